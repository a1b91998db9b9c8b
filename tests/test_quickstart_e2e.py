"""`kanva quickstart --preset tiny`: the whole loop end to end (three arms, a novel-split benchmark), then a
re-run that skips finished steps."""

import json
import os

import pytest
import yaml

from kanva.cli import main
from kanva.quickstart.config import load_quickstart_config, recipes_dir
from kanva.quickstart.pipeline import Quickstart
from kanva.quickstart.report import _fmt_ci, _seed_subtasks_table
from kanva.quickstart.steps import StepRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # A relative --out, as the README's plain `kanva quickstart` has (runs/quickstart-smol): the recipes the run
    # writes must still point at its models when `kanva train` reads them from OUT/recipes/.
    base = tmp_path_factory.mktemp("qs")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["quickstart", "--preset", "tiny", "--out", "tiny", "--jobs", "1"]) == 0
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
    assert q.models() == ["seed", "evolved-noknow", "evolved"]
    for m in q.models():
        assert (q.final_model(m) / "config.json").is_file()
        for bench in ("mme", "mmbench", "pope"):
            assert q.answers(m, bench).is_file() and q.answers(m, bench, "novel").is_file()
        assert marker_cpu(run, f"train_{m}") > 0


def marker_cpu(run, step):
    return json.loads((run / ".steps" / f"{step}.json").read_text())["cpu_share"]


def test_report_has_every_arm_and_intervals(run):
    res = json.loads((run / "report" / "results.json").read_text())
    test, novel = res["test"]["0"], res["novel"]
    # The report's scores are those `kanva eval run` wrote for each model (kanva/eval's scorers, same answers).
    for m in ("seed", "evolved-noknow", "evolved"):
        for scores, folder in ((test, run / "eval" / m), (novel, run / "eval" / m / "novel")):
            mme = json.loads((folder / "mme.results.json").read_text())
            assert {s: row[m] for s, row in scores["mme"]["subtasks"].items()} == pytest.approx(mme["subtasks"])
            pope = json.loads((folder / "pope.results.json").read_text())
            for split, row in scores["pope"]["splits"].items():
                assert {k: row[m][k] for k in ("f1", "accuracy", "yes_ratio")} == pytest.approx(
                    {k: pope["splits"][split][k] for k in ("f1", "accuracy", "yes_ratio")})
            mmb = json.loads((folder / "mmbench.results.json").read_text())
            assert (scores["mmbench"][m]["circular"], scores["mmbench"][m]["circ0"]) == pytest.approx(
                (mmb["overall"], mmb["circ0"]))
            assert scores["mmbench"]["categories"] and all(m in c for c in scores["mmbench"]["categories"].values())
    # The data table counts the run's own files, one column per mixture.
    text = (run / "report" / "report.md").read_text()
    counts = [len(json.loads(p.read_text())) for p in (run / "data" / "seed.json", run / "data" / "evolved" / "evolved.json",
                                                        run / "data" / "evolved-noknow" / "evolved.json")]
    assert any(line.startswith("| samples |") and all(f"| {n} " in line + " " for n in counts)
               for line in text.splitlines())
    # The headline: knowledge of evolved minus evolved-noknow, with its paired interval.
    knowledge = test["mme"]["subtasks"]["knowledge"]["deltas"]["evolved - evolved-noknow"]
    lo, hi = knowledge["ci"]
    assert lo <= knowledge["delta"] <= hi
    assert "## Headline: what the knowledge base adds" in text and "perception on novel (drop)" in text
    perception = test["mme"]["perception_deltas"]["evolved - evolved-noknow"]
    headline_row = next(line for line in text.splitlines() if line.startswith("| 0 |"))
    assert headline_row.endswith(f"| {_fmt_ci(perception['delta'], perception['ci'])} |")
    assert {t["target"] for t in res["targets"]} >= {"whole run <= 45 min (wall clock)",
                                                     "knowledge: evolved - evolved-noknow >= +30, interval above 0"}
    assert set(test["pope"]["splits"]) == {"random", "popular", "adversarial"}
    asked = {json.loads(x)["category"] for x in (run / "eval" / "seed" / "pope.jsonl").read_text().splitlines()}
    assert asked == {"random", "popular", "adversarial"}  # every split was asked, not just the last --data
    assert (run / "report" / "report.html").read_text().startswith("<!doctype html>")
    assert list((run / "report" / "gallery").glob("*.png"))


def test_subtasks_by_training_seed_give_every_seed(run):
    # A second seed whose evolved counting differs: the table shows both seeds' figures in the arm's column.
    test = json.loads((run / "report" / "results.json").read_text())["test"]["0"]
    names = {a: a for a in ("seed", "evolved-noknow", "evolved")}
    other = json.loads(json.dumps(test))
    other["mme"]["subtasks"]["count"]["evolved"] = 12.5
    label = {a: a.upper() for a in names}
    md = _seed_subtasks_table({0: {"names": names, "scores": test}, 7: {"names": names, "scores": other}},
                              list(names), label)
    assert md[0] == "## MME subtasks by training seed (0 / 7)" and "EVOLVED-NOKNOW" in md[2]
    row = next(line for line in md if line.startswith("| count |")).split(" | ")
    assert row[-1] == f"{test['mme']['subtasks']['count']['evolved']:.1f} / 12.5 |"
    assert len(md) == 4 + len(test["mme"]["subtasks"]) + 1


def test_each_model_read_its_own_scene_text_first(run):
    from kanva.data.llava import load_llava

    for m, src in (("seed", run / "data" / "seed.text.json"), ("evolved", run / "data" / "evolved" / "evolved.text.json"),
                   ("evolved-noknow", run / "data" / "evolved-noknow" / "evolved.text.json")):
        recipe = yaml.safe_load((run / "recipes" / f"{m}.yaml").read_text())
        assert [st["name"] for st in recipe["stages"]] == ["read", "instruct"]
        assert [(d["path"], d["image_root"]) for d in recipe["stages"][0]["data"]] == [(str(src), None)]
        assert (run / "train" / m / "read" / "summary.json").is_file()
        samples = load_llava(src)
        assert samples and all("image" not in s and "<image>" not in s["conversations"][0]["value"] for s in samples)
        assert any("background" in s["conversations"][0]["value"] for s in samples)


def test_the_noknow_arm_evolved_without_the_knowledge_base(run):
    run_cfg = json.loads((run / "data" / "evolved-noknow" / "run.json").read_text())
    assert run_cfg["evolve"]["knowledge"] is False and run_cfg["input"] == str(run / "data" / "seed.json")
    prov = [json.loads(x) for x in (run / "data" / "evolved-noknow" / "provenance.jsonl").read_text().splitlines()]
    kept = [r for r in prov if r.get("status") == "kept" and "operator" in r]
    assert kept and not any(r["operator"] in ("knowledge", "multihop") or r["facts"] for r in kept)


def test_without_align_both_runs_start_from_the_vision_model(run, tmp_path):
    cfg = load_quickstart_config("tiny")
    cfg.train.align = None
    q = Quickstart(cfg, tmp_path)
    assert q.train_align() == {"skipped": True} and q.instruct_start() == q.vision


def test_a_reading_only_recipe_trains_beside_the_vision_stage_and_grafts(run, tmp_path):
    """As the smol recipe: no align and no image stage. The reading stage then waits for no step of the vision
    stage (scene text reads the label file `labels` writes first), starts from the base model, and `graft_MODEL`
    gives the evaluated model: the trained LM with the vision stage's encoder and projector."""
    import shutil

    import torch
    from safetensors.torch import load_file

    cfg = load_quickstart_config("tiny")
    cfg.train.align, cfg.train.instruct = None, None
    out = tmp_path / "q"
    shutil.copytree(run, out)  # world, vision stage, data and benchmarks are kept by fingerprint
    q = Quickstart(cfg, out, arms=["evolved"])
    steps = {s.name: s for s in q.steps()}

    def upstream(name: str) -> set[str]:
        seen, todo = set(), list(steps[name].after)
        while todo:
            if (n := todo.pop()) not in seen:
                seen.add(n)
                todo.extend(steps[n].after)
        return seen

    assert q.reads_beside_vision() and "vision" not in upstream("train_evolved")
    assert {"labels", "scene_text_evolved"} <= upstream("train_evolved") and "vision" in steps["graft_evolved"].after
    assert "graft_evolved" in steps["eval_evolved"].after
    q.run(jobs=1)
    ran = yaml.safe_load((out / "recipes" / "evolved.yaml").read_text())
    assert ran["model"]["path"] == str(q.base) and [st["name"] for st in ran["stages"]] == ["read"]
    final, read, vision = (load_file(d / "model.safetensors") for d in
                           (q.final_model("evolved"), q.train_dir / "evolved" / "read" / "final", q.vision))
    assert q.final_model("evolved") == out / "train" / "evolved" / "final"
    assert all(torch.equal(final[k], (read if k.startswith("language_model.") else vision)[k]) for k in final)
    assert json.loads((out / "models" / "labels" / "patch_labels.json").read_text())["words"] == \
        json.loads((q.vision / "patch_labels.json").read_text())["words"]
    assert q.answers("evolved", "mme").is_file() and q.answers("evolved", "pope", "novel").is_file()


def test_rerun_skips_and_force_redoes_one_step(run, capsys):
    before = {p.name: p.read_text() for p in (run / ".steps").glob("*.json")}
    assert main(["quickstart", "--preset", "tiny", "--out", str(run), "--force", "report", "--jobs", "1"]) == 0
    log = capsys.readouterr().out
    assert "world: done" in log and "train_evolved: done" in log and "report: running (forced)" in log
    after = {p.name: p.read_text() for p in (run / ".steps").glob("*.json")}
    assert {k for k in before if before[k] != after[k]} == {"report.json"}


def test_steps_lists_each_steps_state(run, capsys):
    assert main(["quickstart", "--preset", "tiny", "--out", str(run), "--steps"]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
    assert rows and all(state == "done" for _, state in rows)


def test_an_edited_evolve_config_redoes_evolution(tmp_path):
    evolve_cfg = tmp_path / "evolve.yaml"
    evolve_cfg.write_text("mc_circular: true\n")
    cfg = load_quickstart_config("tiny")
    cfg.data.evolve_config = str(evolve_cfg)
    before = {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()}
    evolve_cfg.write_text("mc_circular: true\nmc_answer: option\n")  # same path, new content
    after = {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()}
    assert {k for k in before if before[k] != after[k]} == {"evolve", "evolve_noknow"}


def test_a_moved_run_folder_or_checkout_keeps_every_fingerprint(tmp_path):
    """Step configs hold no checkout path (config files count by content), and paths under OUT count relative to
    it, so a run folder moved elsewhere, or run from another checkout, is still current."""
    cfg = load_quickstart_config("tiny")
    prints = []
    for out in (tmp_path / "a", tmp_path / "elsewhere" / "b"):
        q = Quickstart(cfg, out)
        runner = StepRunner(q.out, q.steps())
        prints.append([runner.fingerprint(s) for s in runner.steps])
    assert prints[0] == prints[1]
    assert str(recipes_dir()) not in json.dumps([s.config for s in q.steps()], default=str)


def test_an_edited_world_config_redoes_the_world_and_comments_or_workers_do_not(tmp_path):
    world_cfg = tmp_path / "world.yaml"
    world_cfg.write_text(open(load_quickstart_config("smol").world.config).read())
    cfg = load_quickstart_config("tiny")
    cfg.world.config = str(world_cfg)
    before = {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()}
    cfg.world.workers += 1  # the world is the same at any number of workers
    assert {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()} == before
    world_cfg.write_text("# a comment is not a setting\n" + world_cfg.read_text())
    assert {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()} == before
    world_cfg.write_text(world_cfg.read_text().replace("max_objects: 6", "max_objects: 5"))  # same path, new world
    after = {s.name: s.config for s in Quickstart(cfg, tmp_path / "out").steps()}
    assert {k for k in before if before[k] != after[k]} == {"world"}


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


def test_jobs_run_a_step_in_its_own_process_with_its_log(run, capsys):
    before = json.loads((run / ".steps" / "report.json").read_text())
    assert main(["quickstart", "--preset", "tiny", "--out", str(run), "--force", "report", "--jobs", "2"]) == 0
    log = capsys.readouterr().out
    assert "train_evolved: done" in log and "report: started (forced)" in log
    assert json.loads((run / ".steps" / "report.json").read_text())["finished"] > before["finished"]
    assert "report: running (forced)" in (run / "logs" / "report.log").read_text()


def test_jobs_default_to_two_where_there_are_two_cores(monkeypatch, tmp_path):
    from kanva.quickstart import pipeline

    seen = []
    monkeypatch.setattr(pipeline.Quickstart, "run", lambda self, **kw: seen.append(kw["jobs"]))
    for cores, jobs in [(2, 2), (16, 2), (1, 1), (None, 1)]:
        monkeypatch.setattr("os.cpu_count", lambda c=cores: c)
        assert main(["quickstart", "--preset", "tiny", "--out", str(tmp_path / "q")]) == 0
        assert seen.pop() == jobs, cores
    assert main(["quickstart", "--preset", "tiny", "--out", str(tmp_path / "q"), "--jobs", "1"]) == 0
    assert seen.pop() == 1


def test_arms_and_seeds_choose_the_steps(capsys):
    assert main(["quickstart", "--preset", "tiny", "--arms", "seed,evolved", "--seeds", "0,1", "--steps"]) == 0
    steps = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "evolve" in steps and "evolve_noknow" not in steps and "scene_text_evolved-noknow" not in steps
    assert {"train_seed", "train_evolved", "train_seed-s1", "train_evolved-s1", "eval_evolved-s1"} <= set(steps)
    assert main(["quickstart", "--preset", "tiny", "--arms", "evolved,nothing", "--steps"]) == 2
    assert "--arms: unknown arm(s) ['nothing']" in capsys.readouterr().err


def test_the_token_budget_weights_each_source_by_the_samples_an_epoch_draws_from_it(tiny_model, tmp_path):
    from kanva.quickstart.budget import mean_tokens

    def source(name, words, n):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([{"id": f"{name}{i}", "conversations": [
            {"from": "human", "value": "word " * words}, {"from": "gpt", "value": "ok"}]} for i in range(n)]))
        return str(path)

    short, long = source("short", 2, 10), source("long", 40, 10)
    alone = {p: mean_tokens(tiny_model, [{"path": p}], 384, seed=0) for p in (short, long)}
    assert alone[long] > alone[short] + 30
    even = mean_tokens(tiny_model, [{"path": short}, {"path": long}], 384, seed=0)
    assert even == pytest.approx((alone[short] + alone[long]) / 2)
    # the long file replayed at a tenth of its size: 10 short draws to 1 long one
    replay = mean_tokens(tiny_model, [{"path": short}, {"path": long, "ratio": 0.1}], 384, seed=0)
    assert replay == pytest.approx((10 * alone[short] + alone[long]) / 11)
