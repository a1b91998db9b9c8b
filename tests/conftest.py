"""Fixtures shared by the suite."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The `tiny` preset (random weights, a few MB), built once for the whole suite.

    Shared: a test must not write into it (build or copy its own model to change one)."""
    from kanva.model import build_preset

    return build_preset("tiny", tmp_path_factory.mktemp("tiny") / "tiny")
