"""Fixtures shared by the suite."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The `tiny` preset (random weights, a few MB), built once for the whole suite.

    Shared: a test must not write into it (build or copy its own model to change one)."""
    from kanva.model import build_preset

    return build_preset("tiny", tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def tiny_ov_model(tmp_path_factory) -> Path:
    """The `tiny-ov` preset (onevision), built once for the whole suite; shared, read-only like tiny_model."""
    from kanva.model import build_preset

    return build_preset("tiny-ov", tmp_path_factory.mktemp("tiny-ov") / "tiny-ov")


def write_mp4(path, frames) -> None:
    """An MPEG-4 video of PIL `frames` at 10 fps (PyAV's bundled FFmpeg encoder)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for im in frames:
            out.mux(stream.encode(av.VideoFrame.from_image(im)))
        out.mux(stream.encode())
