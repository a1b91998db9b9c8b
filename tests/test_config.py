from dataclasses import dataclass, field

import pytest

from kanva.config import from_dict, load_yaml
from kanva.errors import KanvaError


@dataclass
class Inner:
    lr: float = 1e-3
    name: str = "x"


@dataclass
class Outer:
    steps: int
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)


def test_roundtrip_and_coercion():
    cfg = from_dict(Outer, {"steps": 3, "inner": {"lr": "2e-5"}, "items": [{"name": "a"}]})
    assert cfg.inner.lr == 2e-5 and cfg.items[0].name == "a" and cfg.steps == 3


def test_unknown_field_names_path(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("steps: 1\ninner:\n  lr: 1\n  bogus: 2\n")
    with pytest.raises(KanvaError, match=r"r.yaml.inner: unknown field\(s\) \['bogus'\]"):
        load_yaml(Outer, p)


def test_wrong_type_names_field():
    with pytest.raises(KanvaError, match=r"config.steps: expected int"):
        from_dict(Outer, {"steps": "many"})
