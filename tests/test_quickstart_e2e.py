"""`kanva quickstart --preset tiny`: the whole loop end to end, then a re-run that skips finished steps."""

import json
import os

import pytest
import yaml

from kanva.cli import main
from kanva.quickstart.config import load_quickstart_config
from kanva.quickstart.pipeline import Quickstart

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # A relative --out, as the README's plain `kanva quickstart` has (runs/quickstart-smol): the recipes the run
    # writes must still point at its models when `kanva train` reads them from OUT/recipes/.
    base = tmp_path_factory.mktemp("qs")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["quickstart", "--preset", "tiny", "--out", "tiny"]) == 0
    finally:
        os.chdir(cwd)
    return base / "tiny"


def test_every_step_finished_and_timed(run):
    q = Quickstart(load_quickstart_config("tiny"), run)
    names = [s.name for s in q.steps()]
    times = json.loads((run / "times.json").read_text())
    assert list(times) == names
    for name in names:
        marker = json.loads((run / ".steps" / f"{name}.json").read_text())
        assert marker["seconds"] >= 0 and marker["fingerprint"]
    # The vision step ran `kanva grounding pretrain` on the config it wrote (a user can rerun it by hand).
    from kanva.grounding.config import load_pretrain_config

    vision = load_pretrain_config(run / "recipes" / "vision.yaml")
    assert vision.coco == str(q.world) and vision.steps == q.cfg.vision.steps
    assert (q.vision / "patch_labels.json").is_file() and not (q.vision / "checkpoints").exists()
    for m in ("seed", "evolved"):
        assert (q.final_model(m) / "config.json").is_file()
        for bench in ("mme", "mmbench", "pope"):
            assert q.answers(m, bench).is_file()


def test_report_has_both_models_and_intervals(run):
    res = json.loads((run / "report" / "results.json").read_text())
    # The report's scores are those `kanva eval run` wrote for each model (kanva/eval's scorers, same answers).
    for m in ("seed", "evolved"):
        mme = json.loads((run / "eval" / m / "mme.results.json").read_text())
        assert {s: row[m] for s, row in res["mme"]["subtasks"].items()} == pytest.approx(mme["subtasks"])
        pope = json.loads((run / "eval" / m / "pope.results.json").read_text())
        for split, row in res["pope"]["splits"].items():
            assert {k: row[m][k] for k in ("f1", "accuracy", "yes_ratio")} == pytest.approx(
                {k: pope["splits"][split][k] for k in ("f1", "accuracy", "yes_ratio")})
        mmb = json.loads((run / "eval" / m / "mmbench.results.json").read_text())
        assert (res["mmbench"][m]["circular"], res["mmbench"][m]["circ0"]) == pytest.approx((mmb["overall"], mmb["circ0"]))
    # The data table counts the run's own files.
    text = (run / "report" / "report.md").read_text()
    n_seed, n_evolved = (len(json.loads(p.read_text())) for p in (run / "data" / "seed.json",
                                                                       run / "data" / "evolved" / "evolved.json"))
    assert any(line.startswith("| samples |") and f"| {n_seed} |" in line and f"| {n_evolved} |" in line
               for line in text.splitlines())
    knowledge = res["mme"]["subtasks"]["knowledge"]
    lo, hi = knowledge["delta_ci"]
    assert lo <= knowledge["delta"] <= hi
    assert {t["target"] for t in res["targets"]} >= {"whole run <= 30 min"}
    assert set(res["pope"]["splits"]) == {"random", "popular", "adversarial"}
    asked = {json.loads(x)["category"] for x in (run / "eval" / "seed" / "pope.jsonl").read_text().splitlines()}
    assert asked == {"random", "popular", "adversarial"}  # every split was asked, not just the last --data
    assert (run / "report" / "report.html").read_text().startswith("<!doctype html>")
    assert list((run / "report" / "gallery").glob("*.png"))


def test_each_model_read_its_own_scene_text_first(run):
    from kanva.data.llava import load_llava

    for m, src in (("seed", run / "data" / "seed.text.json"), ("evolved", run / "data" / "evolved" / "evolved.text.json")):
        recipe = yaml.safe_load((run / "recipes" / f"{m}.yaml").read_text())
        assert [st["name"] for st in recipe["stages"]] == ["read", "instruct"]
        assert [(d["path"], d["image_root"]) for d in recipe["stages"][0]["data"]] == [(str(src), None)]
        assert (run / "train" / m / "read" / "summary.json").is_file()
        samples = load_llava(src)
        assert samples and all("image" not in s and "<image>" not in s["conversations"][0]["value"] for s in samples)
        assert any("background" in s["conversations"][0]["value"] for s in samples)


def test_without_align_both_runs_start_from_the_vision_model(run, tmp_path):
    cfg = load_quickstart_config("tiny")
    cfg.train.align = None
    q = Quickstart(cfg, tmp_path)
    assert q.train_align() == {"skipped": True} and q.instruct_start() == q.vision


def test_rerun_skips_and_force_redoes_one_step(run, capsys):
    before = {p.name: p.read_text() for p in (run / ".steps").glob("*.json")}
    assert main(["quickstart", "--preset", "tiny", "--out", str(run), "--force", "report"]) == 0
    log = capsys.readouterr().out
    assert "world: done" in log and "train_evolved: done" in log and "report: running (forced)" in log
    after = {p.name: p.read_text() for p in (run / ".steps").glob("*.json")}
    assert {k for k in before if before[k] != after[k]} == {"report.json"}


def test_unknown_preset_is_a_clear_error(capsys):
    assert main(["quickstart", "--preset", "huge"]) == 2
    assert "no quickstart config for preset 'huge'" in capsys.readouterr().err


def test_read_only_runs_evaluate_the_reading_stage(tmp_path):
    cfg = load_quickstart_config("tiny")
    cfg.train.instruct = None
    q = Quickstart(cfg, tmp_path)
    assert q.final_model("evolved") == tmp_path / "train" / "evolved" / "read" / "final"
    path = tmp_path / "none.yaml"
    d = yaml.safe_load(open(cfg.source))
    d["train"]["read"], d["train"]["instruct"] = {}, {}
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(Exception, match="both empty"):
        load_quickstart_config(str(path))


@pytest.mark.parametrize("part, fields, message", [
    ("vision", {"color_cells": "diagonal"}, r"bad.yaml.vision: color_cells must be one of"),
    ("vision", {"object_cells": "middle"}, r"bad.yaml.vision: object_cells must be one of"),
    ("vision", {"color_cells": "around", "object_cells": "cover"}, r"bad.yaml.vision: .*needs object_cells 'center'"),
    ("vision", {"grounding": "hard"}, r"bad.yaml.vision: grounding must be one of"),
    ("vision", {"exclusive": ["count"]}, r"bad.yaml.vision: exclusive: \['count'\] not among the trained label kinds"),
    ("vision", {"stpes": 3}, r"bad.yaml.vision: unknown field\(s\) \['stpes'\]"),
    ("vision", {"coco": "elsewhere"}, r"bad.yaml.vision.coco: set by the quickstart"),
    ("read", {"steps": 3}, r"bad.yaml.train.read.steps: set by the quickstart"),
    ("read", {"tokens": 0}, r"bad.yaml.train.read.tokens: .* >= 1"),
    ("read", {"lr": {"projector": 1e-3}}, r"bad.yaml.train.read.lr.projector: module 'projector' is not in trainable"),
    ("instruct", {"batch_size": "eight"}, r"bad.yaml.train.instruct.batch_size: expected int"),
    ("align", {"steps": None}, r"bad.yaml.train.align: set exactly one of `steps` or `epochs`"),
])
def test_bad_settings_are_refused_at_load_naming_file_and_field(tmp_path, part, fields, message):
    d = yaml.safe_load(open(load_quickstart_config("tiny").source))
    (d if part == "vision" else d["train"])[part].update(fields)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(Exception, match=message):
        load_quickstart_config(str(path))


def test_stage_templates_are_typed_stages_with_a_budget():
    cfg = load_quickstart_config("tiny")
    assert cfg.train.align.template == "plain" and cfg.train.align.steps == 3  # align: fixed steps, captions
    assert cfg.train.read.stage.template == "chat" and cfg.train.read.tokens == 2000
    assert cfg.train.instruct.stage.max_length == 384 and cfg.train.instruct.stage.steps is None
