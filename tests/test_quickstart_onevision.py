"""`kanva quickstart --preset onevision`: the single-image -> OneVision curriculum; and the default quickstart
left as it was."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.quickstart.config import load_quickstart_config, recipes_dir
from kanva.quickstart.onevision import OnevisionQuickstart
from kanva.quickstart.pipeline import Quickstart

# sha256 of the default presets' steps (name, the steps each reads, the config its fingerprint is made of): a change
# here redoes finished steps of users' runs (a recipe setting, a fingerprinted field), so it must be meant; retake
# the digest in the commit that means it and say there why.
STEPS_BEFORE_ONEVISION = {
    "smol": "af601776dace1ec6d7313e41a1d56178890fcec67194ad0219bd71dc2270c729",
    "tiny": "65c664a12db58ffcc265205f7678baa4a7679964940ea8d3de4bc32532252dee",
}


def test_default_quickstart_steps_and_configs_unchanged():
    for preset, digest in STEPS_BEFORE_ONEVISION.items():
        q = Quickstart(load_quickstart_config(preset), f"/quickstart-golden/{preset}")  # configs hold OUT paths
        rows = json.dumps([[s.name, s.after, s.config] for s in q.steps()], sort_keys=True, default=str)
        rows = rows.replace(str(recipes_dir()), "RECIPES")  # configs name the checkout's recipe files
        got = hashlib.sha256(rows.encode()).hexdigest()
        assert got == digest, f"{preset}: its steps or their configs changed"


def test_a_stage_field_at_its_old_default_is_not_fingerprinted():
    from kanva.quickstart.pipeline import stage_config

    assert "lm_frozen_layers" not in stage_config(load_quickstart_config("smol").train.read)["stage"]
    assert stage_config(load_quickstart_config("onevision").train.read)["stage"]["lm_frozen_layers"] == 15


# ---- the OneVision curriculum ------------------------------------------------------------------------------


def test_onevision_configs_load_and_check(tmp_path):
    cfg = load_quickstart_config("onevision")
    assert cfg.source.endswith("recipes/onevision-smol.yaml") and cfg.preset == "smol-ov"
    assert cfg.onevision.stage.tokens > 0 and cfg.onevision.stage.stage.trainable == ["lm"]
    assert cfg.vision.onevision.frames_per_step > 0 and cfg.model_overrides["image_grid_pinpoints"] == [[96, 96]]
    q = OnevisionQuickstart(cfg, tmp_path / "ov")
    assert q.models() == ["single-image", "onevision-evolved-noknow", "onevision-evolved"]
    with pytest.raises(KanvaError, match="--seeds"):
        OnevisionQuickstart(cfg, tmp_path / "ov", seeds=[0, 1])
    with pytest.raises(KanvaError, match="--arms"):
        OnevisionQuickstart(cfg, tmp_path / "ov", arms=["seed", "evolved"])
    bad = tmp_path / "bad.yaml"
    src = load_quickstart_config("onevision-tiny").source
    bad.write_text(open(src).read().replace("sets: {train: 6, test: 4}", "sets: {train: 6}"))
    with pytest.raises(KanvaError, match=r"bad\.yaml\.onevision\.sets: needs train and test"):
        load_quickstart_config(str(bad))
    bad.write_text(open(src).read().replace("  sets: {train: 6, test: 4}", "  pack: 0\n  sets: {train: 6, test: 4}"))
    with pytest.raises(KanvaError, match=r"bad\.yaml\.onevision\.pack: questions per sample must be >= 1"):
        load_quickstart_config(str(bad))
    for arm, msg in (("evolved-knowless", "unknown arm"), ("seed", "the replay is evolved single-image data")):
        bad.write_text(open(src).read().replace("replay_arm: evolved-noknow", f"replay_arm: {arm}"))
        with pytest.raises(KanvaError, match=rf"bad\.yaml\.onevision\.replay_arm: .*{msg}"):
            load_quickstart_config(str(bad))


def test_onevision_pack_reaches_the_set_and_clip_evolution_only(tmp_path):
    """`onevision.pack` packs the set and clip questions (their evolve steps' fingerprints say so); the
    single-image evolution keeps `data.pack`."""
    cfg = load_quickstart_config("onevision-tiny")
    plain = {s.name: s.config for s in OnevisionQuickstart(cfg, tmp_path / "ov").steps()}
    cfg.onevision.pack = 4
    packed = {s.name: s.config for s in OnevisionQuickstart(cfg, tmp_path / "ov").steps()}
    changed = sorted(n for n in plain if plain[n] != packed[n])
    assert changed == ["evolve_clips", "evolve_clips_noknow", "evolve_sets", "evolve_sets_noknow"]
    assert all(packed[n]["sequence_pack"] == 4 and plain[n]["sequence_pack"] == 1 for n in changed)


def test_per_arm_curricula_give_each_arm_its_own_single_image_model_and_replay(tmp_path, monkeypatch):
    """`onevision.per_arm_single_image`: the noknow arm's OneVision stage starts from a single-image model of its
    own (trained on knowledge-free single-image data, made by its own evolve step) and replays those data; the
    report's single-image model stays the si_arm's, and only it is evaluated."""
    cfgs = [load_quickstart_config("onevision-tiny") for _ in range(2)]
    for cfg, per_arm in zip(cfgs, (False, True)):
        cfg.onevision.per_arm_single_image, cfg.onevision.replay_arm = per_arm, None
    shared, q = (OnevisionQuickstart(cfg, tmp_path / "ov") for cfg in cfgs)
    after = {s.name: s.after for s in q.steps()}
    assert q.models() == shared.models() == ["single-image", "onevision-evolved-noknow", "onevision-evolved"]
    assert list(q.si_models()) == ["single-image", "single-image-evolved-noknow"]
    assert list(shared.si_models()) == ["single-image"]
    assert "evolve_noknow" in after and "evolve_noknow" not in {s.name for s in shared.steps()}
    assert "evolve_noknow" in after["scene_text"] and after["train_single-image-evolved-noknow"] == ["scene_text"]
    assert "eval_single-image-evolved-noknow" not in after
    assert after["train_onevision-evolved-noknow"][0] == "train_single-image-evolved-noknow"
    assert after["train_onevision-evolved"][0] == "train_single-image"
    monkeypatch.setattr("kanva.quickstart.onevision.sample_count", lambda path: 10)  # no data files made here
    for qq, arm, data in ((q, "evolved-noknow", "evolved-noknow"), (shared, "evolved-noknow", "evolved"),
                          (q, "evolved", "evolved")):
        replay = qq.onevision_mixture(arm)[0]["path"]
        assert replay == str(tmp_path / "ov" / "data" / data / "evolved.text.json"), (arm, replay)
    assert q.trained_model("single-image-evolved-noknow") == tmp_path / "ov/train/single-image-evolved-noknow/read/final"
    # every stage trains the LM alone on scene text: they run beside the vision stage, and the evaluated models are
    # their LMs grafted onto its encoder (the OneVision stage starts from the trained, not the grafted, model)
    assert q.reads_beside_vision() and "vision" not in after["train_single-image"] + after["scene_text"]
    assert after["graft_onevision-evolved"] == ["train_onevision-evolved", "vision"]
    assert after["eval_onevision-evolved"][0] == "graft_onevision-evolved"
    assert q.final_model("onevision-evolved") == tmp_path / "ov/train/onevision-evolved/final"


def test_replay_arm_sets_whose_single_image_data_every_onevision_stage_replays(tmp_path, monkeypatch):
    """`onevision.replay_arm`: both arms' OneVision stages replay that arm's single-image data (made and written
    as scene text even when no single-image model reads it), while each still starts from its own single-image
    model; the stages' fingerprints name it, and without it they are those of before."""
    monkeypatch.setattr("kanva.quickstart.onevision.sample_count", lambda path: 10)  # no data files made here
    noknow_text = str(tmp_path / "ov" / "data" / "evolved-noknow" / "evolved.text.json")
    for per_arm in (False, True):
        cfg = load_quickstart_config("onevision-tiny")
        cfg.onevision.per_arm_single_image = per_arm
        cfg.onevision.replay_arm = None
        own = {s.name: s for s in OnevisionQuickstart(cfg, tmp_path / "ov").steps()}
        cfg.onevision.replay_arm = "evolved-noknow"
        q = OnevisionQuickstart(cfg, tmp_path / "ov")
        steps = {s.name: s for s in q.steps()}
        assert "evolve_noknow" in steps and "evolve_noknow" in steps["scene_text"].after
        assert set(q.si_models()) == ({"single-image", "single-image-evolved-noknow"} if per_arm else {"single-image"})
        for arm in q.arms:
            assert q.onevision_mixture(arm)[0]["path"] == noknow_text, (per_arm, arm)
            assert steps[f"train_onevision-{arm}"].after[0] == f"train_{q.si_model(arm)}"
            step, before = steps[f"train_onevision-{arm}"].config, own[f"train_onevision-{arm}"].config
            assert step == before | {"replay": "evolved-noknow"} and "replay" not in before
    assert q.onevision_mixture("evolved")[1]["path"].endswith("data/sets/evolved/evolved.text.json")  # its own sets


def test_only_the_compared_models_answer_the_single_image_benchmarks(tmp_path):
    """The report sets the single-image model beside the knowledge-evolved OneVision model on single-image
    benchmarks; the other arm's OneVision model answers only the multi-image and video ones, and its eval step's
    fingerprint says so while the compared models' stay as they were."""
    cfg = load_quickstart_config("onevision-tiny")
    q = OnevisionQuickstart(cfg, tmp_path / "ov")
    steps = {s.name: s for s in q.steps()}
    assert q.single_image_benchmarked() == ["single-image", "onevision-evolved"]
    for m in q.models():
        extra = {} if m in q.single_image_benchmarked() else {"single_image": False}
        assert steps[f"eval_{m}"].config == vars(cfg.eval) | extra, m
    only = OnevisionQuickstart(cfg, tmp_path / "ov1", arms=["evolved-noknow"])
    assert only.single_image_benchmarked() == ["single-image", "onevision-evolved-noknow"]


@pytest.fixture(scope="module")
def ov_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs-ov") / "ov"
    assert main(["quickstart", "--preset", "onevision-tiny", "--out", str(out), "--jobs", "1"]) == 0
    return out


@pytest.mark.slow
def test_report_compares_single_image_and_onevision_on_every_benchmark(ov_run):
    q = OnevisionQuickstart(load_quickstart_config("onevision-tiny"), ov_run)
    assert q.single_image_benchmarked() == ["single-image", "onevision-evolved"]
    for m in q.models():
        assert (q.final_model(m) / "config.json").is_file()
        for bench in ("mme", "pope", "mmbench", "muirbench", "mvbench"):
            asked = bench in ("muirbench", "mvbench") or m in q.single_image_benchmarked()
            assert q.answers(m, bench).with_suffix(".results.json").is_file() == asked, (m, bench)
    # the OneVision models start from the single-image model (its trained LM, not the grafted copy): their
    # recipe names it, and the grafted model is that LM with the vision stage's encoder
    recipe = (ov_run / "recipes" / "onevision-evolved.yaml").read_text()
    assert f"path: {q.trained_model('single-image')}\n" in recipe
    from safetensors.torch import load_file

    final, lm, vision = (load_file(d / "model.safetensors") for d in
                         (q.final_model("onevision-evolved"), q.trained_model("onevision-evolved"), q.vision))
    assert "image_newline" in final
    assert all(torch.equal(final[k], (lm if k.startswith("language_model.") else vision)[k]) for k in final)
    # per arm (the tiny preset's setting): the noknow arm's starts from its own, trained on knowledge-free data
    noknow = (ov_run / "recipes" / "onevision-evolved-noknow.yaml").read_text()
    assert f"path: {q.trained_model('single-image-evolved-noknow')}\n" in noknow
    assert str(ov_run / "data" / "evolved-noknow" / "evolved.text.json") in noknow
    # and the evolved arm's replays the knowledge-free single-image data too (replay_arm), beside its own sets
    assert str(ov_run / "data" / "evolved-noknow" / "evolved.text.json") in recipe
    assert str(ov_run / "data" / "evolved" / "evolved.text.json") not in recipe
    assert str(ov_run / "data" / "sets" / "evolved" / "evolved.text.json") in recipe
    assert str(ov_run / "data" / "evolved-noknow" / "evolved.text.json") in (
        ov_run / "recipes" / "single-image-evolved-noknow.yaml").read_text()
    res = json.loads((ov_run / "report" / "results.json").read_text())
    for bench in ("muirbench", "mvbench"):
        overall = res["sequences"][bench]["overall"]
        assert set(overall) == set(q.models())
        for acc, (lo, hi) in overall.values():
            assert 0 <= lo <= acc <= hi <= 100
        assert res["knowledge"][bench]["questions"] > 0
    # the MME yes-share, counted here from the answer files by the official parsing
    from kanva.eval.mme import parse_yes_no

    for m in q.single_image_benchmarked():
        texts = [json.loads(x)["text"] for x in q.answers(m, "mme").read_text().splitlines()]
        assert res["single_image"]["mme_yes_share"][m] == sum(parse_yes_no(t) == "yes" for t in texts) / len(texts)
    md = (ov_run / "report" / "report.md").read_text()
    si_vs_ov = md.split("## Single-image model vs OneVision model")[1].split("##")[0]
    assert "yes-share) |" in si_vs_ov
    for row in ("MME-format perception", "POPE mean F1", "MMBench circular", "multi-image MC", "video MC"):
        assert f"| {row}" in si_vs_ov, row
    assert "onevision-evolved - onevision-evolved-noknow" in md


@pytest.mark.slow
def test_rerun_skips_and_redone_steps_reproduce_their_outputs(ov_run, capsys):
    cfg = load_quickstart_config("onevision-tiny")
    q = OnevisionQuickstart(cfg, ov_run)
    data = [q.sequence_dir(k, "full") / "evolved.text.json" for k in ("set", "clip")]
    before = [p.read_bytes() for p in data]
    weights = q.final_model("onevision-evolved") / "model.safetensors"
    w0 = weights.read_bytes()
    capsys.readouterr()
    assert main(["quickstart", "--preset", "onevision-tiny", "--out", str(ov_run), "--jobs", "1"]) == 0
    log = capsys.readouterr().out
    assert "running" not in log and log.count("skipped") == len(q.steps())
    # redone from scratch (and the steps after it): the set and clip scene text byte for byte, the OneVision
    # stage's weights within float noise
    assert main(["quickstart", "--preset", "onevision-tiny", "--out", str(ov_run), "--force", "scene_text_evolved",
                 "--jobs", "1"]) == 0
    assert "train_onevision-evolved: running (inputs changed)" in capsys.readouterr().out
    assert [p.read_bytes() for p in data] == before
    from safetensors.torch import load

    a, b = load(w0), load(weights.read_bytes())
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
