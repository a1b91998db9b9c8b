"""The toy data set and the `kanva train` CLI surface."""

import hashlib
from pathlib import Path

from PIL import Image

from kanva.cli import main
from kanva.data.llava import load_llava, sample_images


def test_toy_data_follows_the_contract_and_is_deterministic(tmp_path):
    assert main(["train", "--toy-data", str(tmp_path / "a")]) == 0
    main(["train", "--toy-data", str(tmp_path / "b")])
    for name in ("captions.json", "instruct.json"):
        samples = load_llava(tmp_path / "a" / name)  # validates roles, <image> placement, ...
        assert len(samples) >= 48
        for s in samples:
            for p in sample_images(s):
                with Image.open(tmp_path / "a" / p) as im:
                    assert im.size == (64, 64)
        digest = lambda d: hashlib.sha256((d / name).read_bytes()).hexdigest()  # noqa: E731
        assert digest(tmp_path / "a") == digest(tmp_path / "b")
    ins = load_llava(tmp_path / "a" / "instruct.json")
    turns = {len(s["conversations"]) for s in ins}
    assert len(turns) > 2  # conversation lengths vary: something for length grouping to group
    assert any("image" not in s for s in ins)  # text-only samples are part of the mix


def test_cli_reports_a_bad_recipe(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("model: {preset: tiny}\nstages:\n  - {name: a, trainable: [projektor], lr: {projector: 1}, "
                 "data: [{path: x.json}], steps: 1}\n")  # fmt: skip
    assert main(["train", "--recipe", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml.stages[0].trainable[0]: unknown module 'projektor'" in err
    assert not (tmp_path / "o").exists()  # nothing was started


def test_cli_needs_recipe_and_out(capsys):
    assert main(["train", "--recipe", "x.yaml"]) == 2
    assert "--out" in capsys.readouterr().err


def test_missing_model_dir_is_named(tmp_path, capsys):
    p = tmp_path / "r.yaml"
    p.write_text("model: {path: " + str(Path(tmp_path / "m")) + "}\nstages:\n  - {name: a, trainable: [projector], "
                 "lr: {projector: 1}, data: [{path: nothing.json}], steps: 1}\n")  # fmt: skip
    rc = main(["train", "--recipe", str(p), "--out", str(tmp_path / "o")])
    assert rc == 2 and "is not a model directory" in capsys.readouterr().err
