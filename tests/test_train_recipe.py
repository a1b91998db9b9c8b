"""Recipes load strictly: typos fail before any model loads, naming the file and the field."""

from pathlib import Path

import pytest

from kanva.errors import KanvaError
from kanva.train.recipe import MODULES, load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _stage(**kw):
    s = {"name": "a", "trainable": ["projector"], "lr": {"projector": 1e-3}, "data": [{"path": "x.json"}], "steps": 2}
    s.update(kw)
    return s


def _recipe(**stage_kw):
    return {"model": {"preset": "tiny"}, "stages": [_stage(**stage_kw)]}


@pytest.mark.parametrize("name", ["tiny.yaml", "llava-1.5.yaml"])
def test_shipped_recipes_load(name):
    r = load_recipe(ROOT / "recipes" / name)
    assert [s.name for s in r.stages] == ["align", "instruct"]
    align, instruct = r.stages
    # LLaVA-1.5's stages: projector only on captions with a plain template, then projector + LM.
    assert align.trainable == ["projector"] and align.template == "plain"
    assert set(instruct.trainable) == {"projector", "lm"} and instruct.template == "chat"
    assert all(Path(d.path).is_absolute() for s in r.stages for d in s.data)


def test_llava15_learning_rates():
    r = load_recipe(ROOT / "recipes" / "llava-1.5.yaml")
    assert r.stages[0].lr == {"projector": 1e-3}
    assert r.stages[1].lr == {"projector": 2e-5, "lm": 2e-5}


def test_llava_onevision_recipe_is_the_published_schedule(capsys):
    """OneVision's four stages: projector only, then the whole model three times with the vision tower at a
    fifth of the LM's rate (2e-6 vs 1e-5); and the memory plan, which reads no weights, says each stage fits."""
    from kanva.cli import main

    path = ROOT / "recipes" / "llava-onevision.yaml"
    r = load_recipe(path)
    assert [s.name for s in r.stages] == ["align", "mid", "single_image", "onevision"]
    assert r.model.preset == "llava-onevision-7b" and r.mixed_precision == "bf16"
    align, *full = r.stages
    assert align.trainable == ["projector"] and align.template == "plain" and align.lr == {"projector": 1e-3}
    for s in full:
        assert set(s.trainable) == {"vision", "projector", "lm"} and s.epochs == 1
        assert s.lr["vision"] == pytest.approx(s.lr["lm"] / 5) and s.lr["lm"] == 1e-5
        assert s.batch_size * s.grad_accum * 128 == 256  # the scripts' 7B setting: 1 x 2 on 128 GPUs
    cfg = ROOT / "recipes" / "accelerate" / "deepspeed-zero3.yaml"
    assert main(["train", "--recipe", str(path), "--plan", "--accelerate-config", str(cfg), "--gpu-mem", "80"]) == 0
    rows = [x for x in capsys.readouterr().out.splitlines() if x.startswith(tuple(f"| {s.name} " for s in r.stages))]
    assert len(rows) == 4 and all(x.rstrip(" |").endswith("yes") for x in rows), rows


def test_unknown_module_names_file_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "model: {preset: tiny}\nstages:\n  - name: align\n    trainable: [projektor]\n"
        "    lr: {projector: 1.0e-3}\n    data: [{path: x.json}]\n    steps: 1\n"
    )
    with pytest.raises(KanvaError, match=r"bad\.yaml\.stages\[0\]\.trainable\[0\]: unknown module 'projektor'"):
        load_recipe(p)


def test_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: {preset: tiny}\nstages:\n  - {name: a, trainable: [lm], lr: {lm: 1}, data: [{path: x}], steps: 1, stpes: 2}\n")
    with pytest.raises(KanvaError, match=r"r\.yaml\.stages\[0\]: unknown field\(s\) \['stpes'\]"):
        load_recipe(p)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"lr": {}}, r"no learning rate for trainable module\(s\) \['projector'\]"),
        ({"lr": {"projector": 1e-3, "lm": 1e-5}}, r"lr\.lm: module 'lm' is not in trainable"),
        ({"lr": {"projector": 0.0}}, r"lr\.projector: must be > 0"),
        ({"trainable": ["lm", "lm_lora"], "lr": {"lm": 1.0, "lm_lora": 1.0}}, "exclude each other"),
        ({"trainable": []}, "trainable: empty"),
        ({"steps": None}, "exactly one of `steps` or `epochs`"),
        ({"epochs": 1.0}, "exactly one of `steps` or `epochs`"),
        ({"data": [{"path": "x.json", "ratio": 0}]}, r"data\[0\]\.ratio: must be > 0"),
        ({"data": []}, "data: empty"),
        ({"template": "fancy"}, r"template: 'fancy' is not one of"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        ({"lora": {"r": 4}}, "`lm_lora` is not in trainable"),
    ],
)
def test_bad_stage_fields(kw, msg):
    with pytest.raises(KanvaError, match=msg):
        recipe_from_dict(_recipe(**kw), source="r.yaml")


def test_model_needs_exactly_one_source():
    with pytest.raises(KanvaError, match=r"r\.yaml\.model: set exactly one"):
        recipe_from_dict({"model": {"preset": "tiny", "path": "m"}, "stages": [_stage()]}, source="r.yaml")


def test_duplicate_stage_names():
    with pytest.raises(KanvaError, match=r"stages\[1\]\.name"):
        recipe_from_dict({"model": {"preset": "tiny"}, "stages": [_stage(), _stage()]}, source="r.yaml")


def test_lora_defaults_and_relative_paths(tmp_path):
    r = recipe_from_dict(
        _recipe(trainable=["projector", "lm_lora"], lr={"projector": 1e-3, "lm_lora": 2e-4}),
        source="r.yaml",
        base_dir=tmp_path,
    )
    st = r.stages[0]
    assert st.lora is not None and st.lora.r >= 1 and "q_proj" in st.lora.target_modules
    assert st.data[0].path == str(tmp_path / "x.json")
    assert set(MODULES) == {"vision", "projector", "lm", "lm_lora"}
    assert "source" not in r.to_dict()


def test_gradient_checkpointing_names_a_tower():
    with pytest.raises(KanvaError, match=r"stages\[0\]\.gradient_checkpointing\[0\]: 'projector' is not one of"):
        recipe_from_dict(_recipe(gradient_checkpointing=["projector"]), source="r.yaml")
    assert recipe_from_dict(_recipe(gradient_checkpointing=["vision", "lm"])).stages[0].gradient_checkpointing == ["vision", "lm"]
