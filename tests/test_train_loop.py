"""The training loop end to end on the tiny preset and the toy data (seconds each, on CPU)."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.train.metrics import read_metrics
from kanva.train.recipe import recipe_from_dict
from kanva.train.toy import make_toy_data
from kanva.train.trainer import TrainingDiverged, run_recipe


@pytest.fixture(scope="module")
def base(tiny_model) -> Path:
    return tiny_model


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    return make_toy_data(tmp_path_factory.mktemp("toy"), n_images=16)


def _align(toy, **kw):
    s = {"name": "align", "trainable": ["projector"], "lr": {"projector": 1e-2}, "template": "plain",
         "data": [{"path": str(toy["captions"])}], "steps": 4, "batch_size": 4, "max_length": 128}  # fmt: skip
    s.update(kw)
    return s


def _instruct(toy, **kw):
    s = {"name": "instruct", "trainable": ["projector", "lm"], "lr": {"projector": 1e-3, "lm": 1e-3},
         "data": [{"path": str(toy["instruct"])}, {"path": str(toy["captions"]), "ratio": 0.5}],
         "steps": 4, "batch_size": 2, "grad_accum": 2, "max_length": 128}  # fmt: skip
    s.update(kw)
    return s


def _recipe(base, *stages, seed=0):
    return recipe_from_dict({"model": {"path": str(base)}, "seed": seed, "stages": list(stages)}, source="test.yaml")


def _weights(d) -> dict:
    return load_file(str(Path(d) / "model.safetensors"))


def test_two_stages_write_plain_models(base, toy, tmp_path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    out = tmp_path / "run"
    res = run_recipe(_recipe(base, _align(toy), _instruct(toy)), out)
    assert [r.name for r in res] == ["align", "instruct"] and all(r.final_dir for r in res)

    b, a, i = _weights(base), _weights(out / "align" / "final"), _weights(out / "instruct" / "final")
    changed = lambda x, y: {k for k in x if not torch.equal(x[k], y[k])}  # noqa: E731
    # align trains the projector only; instruct (which starts from align's final) also trains the LM
    assert changed(b, a) and all(k.startswith("multi_modal_projector.") for k in changed(b, a))
    assert any(k.startswith("language_model.") for k in changed(a, i))
    assert not any(k.startswith("vision_tower.") for k in changed(b, i))

    # a final dir is a plain transformers checkpoint + processor
    final = out / "instruct" / "final"
    model = LlavaForConditionalGeneration.from_pretrained(final)
    proc = AutoProcessor.from_pretrained(final)
    assert proc.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id

    rows = read_metrics(out / "instruct" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"step", "loss", "lr", "tokens", "tokens_per_s", "time"} <= set(rows[0])
    assert all(math.isfinite(r["loss"]) and r["tokens"] > 0 for r in rows)
    # warmup then cosine: lr peaks early and falls
    lrs = [r["lr"] for r in rows]
    assert max(lrs) == pytest.approx(1e-3) and lrs[-1] < lrs[1]


def test_align_loss_goes_down(base, toy, tmp_path):
    run_recipe(_recipe(base, _align(toy, steps=12, lr={"projector": 3e-2}, warmup_ratio=0.0)), tmp_path / "run")
    loss = [r["loss"] for r in read_metrics(tmp_path / "run" / "align" / "metrics.jsonl")]
    assert sum(loss[-3:]) / 3 < sum(loss[:3]) / 3


def test_resume_matches_uninterrupted_run(base, toy, tmp_path):
    stage = _instruct(toy, steps=6, save_every=2, lr={"projector": 1e-2, "lm": 1e-2})
    r = _recipe(base, stage)
    run_recipe(r, tmp_path / "full")
    # stop at step 3 (a checkpoint is written there), then continue to the end
    first = run_recipe(r, tmp_path / "cut", max_steps=3)
    assert first[0].final_dir is None and first[0].steps_done == 3
    assert (tmp_path / "cut" / "instruct" / "checkpoints" / "step-0000003").is_dir()
    second = run_recipe(r, tmp_path / "cut", resume=True)
    assert second[0].resumed_from == 3 and second[0].final_dir
    a, b = _weights(tmp_path / "full" / "instruct" / "final"), _weights(tmp_path / "cut" / "instruct" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    # the metrics file reads as one run
    la = [x["loss"] for x in read_metrics(tmp_path / "full" / "instruct" / "metrics.jsonl")]
    lb = [x["loss"] for x in read_metrics(tmp_path / "cut" / "instruct" / "metrics.jsonl")]
    assert len(lb) == 6 and lb == pytest.approx(la, rel=1e-5)


def test_same_seed_same_losses_other_seed_differs(base, toy, tmp_path):
    stage = _instruct(toy, steps=2)
    losses = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_recipe(_recipe(base, stage, seed=seed), tmp_path / name)
        losses.append([x["loss"] for x in read_metrics(tmp_path / name / "instruct" / "metrics.jsonl")])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert losses[0] != pytest.approx(losses[2], rel=1e-6)  # another seed, another data order


def test_nan_loss_stops_and_keeps_last_good_checkpoint(base, toy, tmp_path):
    r = _recipe(base, _align(toy, lr={"projector": 1e30}, steps=5, save_every=1))
    with pytest.raises(TrainingDiverged, match=r"stage 'align', step \d+: (loss|gradient norm) is (nan|inf)") as e:
        run_recipe(r, tmp_path / "run")
    assert "last good checkpoint" in str(e.value)
    ckpts = sorted((tmp_path / "run" / "align" / "checkpoints").iterdir())
    assert ckpts and all((c / "trainer_state.json").is_file() for c in ckpts)
    assert not (tmp_path / "run" / "align" / "final").exists()


def test_cli_exit_code_on_nan(base, toy, tmp_path):
    import yaml

    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"model": {"path": str(base)}, "stages": [_align(toy, lr={"projector": 1e30})]}))
    assert main(["train", "--recipe", str(p), "--out", str(tmp_path / "run")]) == 2


def test_lora_stage_is_merged_into_a_plain_model(base, toy, tmp_path):
    stage = _instruct(toy, trainable=["projector", "lm_lora"], lr={"projector": 1e-3, "lm_lora": 1e-2},
                      lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})  # fmt: skip
    run_recipe(_recipe(base, stage), tmp_path / "run")
    b, f = _weights(base), _weights(tmp_path / "run" / "instruct" / "final")
    assert set(b) == set(f)  # no adapter tensors left
    changed = {k for k in b if not torch.equal(b[k], f[k])}
    assert any(".q_proj." in k for k in changed) and any(".v_proj." in k for k in changed)
    assert not any(".k_proj." in k or "vision_tower" in k for k in changed)


def test_invalid_samples_error_or_are_counted(base, toy, tmp_path):
    """The issue's bad inputs: each an error naming file + id, or a counted skip with skip_invalid."""
    root = Path(toy["images"]).parent
    good = json.loads(Path(toy["instruct"]).read_text())[:6]
    png = (root / good[0]["image"]).read_bytes()
    (root / "images" / "cut.png").write_bytes(png[: len(png) // 2])  # a truncated PNG
    q = lambda v: {"from": "human", "value": v}  # noqa: E731
    a = lambda v: {"from": "gpt", "value": v}  # noqa: E731
    long = " ".join(["red"] * 100_000)
    bad = [
        {"id": "lost", "image": "images/nope.png", "conversations": [q("<image>\nWhat?"), a("A shape.")]},
        {"id": "cut", "image": "images/cut.png", "conversations": [q("<image>\nWhat?"), a("A shape.")]},
        {"id": "gpt-first", "conversations": [a("hi"), q("?")]},
        {"id": "two-images", "image": good[0]["image"], "conversations": [q("<image><image>\nWhat?"), a("Two.")]},
        {"id": "empty", "conversations": [q("Hi?"), a("  ")]},
        {"id": "image-at-end", "image": good[0]["image"], "conversations": [q(long + " <image>"), a("Red.")]},
    ]
    ok_long = {"id": "long-ok", "image": good[0]["image"], "conversations": [q("<image>\nSay red."), a(long)]}
    data = root / "mixed.json"
    data.write_text(json.dumps(good + bad + [ok_long]))
    r = _recipe(base, _instruct(toy, data=[{"path": str(data)}], steps=1, max_length=512))
    with pytest.raises(KanvaError, match=r"mixed\.json.*sample '(lost|gpt-first)'.*\[(missing_image|roles)\]"):
        run_recipe(r, tmp_path / "strict")
    res = run_recipe(r, tmp_path / "skip", skip_invalid=True)
    assert res[0].skipped == {"missing_image": 1, "corrupt_image": 1, "roles": 1, "image_tokens": 1,
                              "empty_turn": 1, "too_long": 1}  # fmt: skip
    assert res[0].truncated == 1  # the 100,000-token answer is cut to max_length, not dropped
    assert json.loads((tmp_path / "skip" / "instruct" / "summary.json").read_text())["skipped"] == res[0].skipped

    broken = root / "broken.json"
    broken.write_text(json.dumps(good)[:-1] + ",]")  # a trailing comma: nothing to keep, an error either way
    r = _recipe(base, _instruct(toy, data=[{"path": str(broken)}], steps=1))
    with pytest.raises(KanvaError, match=r"broken\.json.*invalid JSON"):
        run_recipe(r, tmp_path / "broken", skip_invalid=True)


def test_existing_run_needs_resume(base, toy, tmp_path):
    r = _recipe(base, _align(toy, steps=1))
    run_recipe(r, tmp_path / "run")
    with pytest.raises(KanvaError, match="--resume"):
        run_recipe(r, tmp_path / "run")
    assert run_recipe(r, tmp_path / "run", resume=True)[0].already_done
    other = _recipe(base, _align(toy, steps=2))
    with pytest.raises(KanvaError, match="different recipe"):
        run_recipe(other, tmp_path / "run", resume=True)


def test_packed_and_checkpointed_run_follows_the_padded_run(base, toy, tmp_path):
    padded = run_recipe(_recipe(base, _instruct(toy, group_by_length=False)), tmp_path / "padded")
    packed = run_recipe(_recipe(base, _instruct(toy, group_by_length=False, packing=True,
                                                gradient_checkpointing=["vision", "lm"])), tmp_path / "packed")
    a = read_metrics(tmp_path / "padded" / "instruct" / "metrics.jsonl")
    b = read_metrics(tmp_path / "packed" / "instruct" / "metrics.jsonl")
    assert [r["tokens"] for r in b] == [r["tokens"] for r in a]  # the same samples each step
    assert all(r["padding"] == 0 for r in b) and any(r["padding"] > 0 for r in a)
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4)
    assert packed[0].final_dir and padded[0].final_dir


def test_mixed_precision_loads_frozen_weights_in_bf16(base, toy):
    from kanva.train.stage_model import load_stage_model

    recipe = _recipe(base, _align(toy, trainable=["projector"], gradient_checkpointing=["lm"]))
    sm = load_stage_model(recipe, recipe.stages[0], base, "bf16")
    assert {p.dtype for p in sm.llava.model.language_model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in sm.groups["projector"]} == {torch.float32}  # AdamW's master weights
    assert sm.llava.model.language_model.gradient_checkpointing and sm.llava.training


def test_lora_merge_from_gathered_weights_equals_live_merge(base, toy):
    """FSDP/ZeRO end a LoRA stage from the gathered state dict; the merged model equals DDP's live merge."""
    from kanva.train.loss import SupervisedLoss
    from kanva.train.stage_model import load_stage_model, merged_lora_model

    recipe = _recipe(base, _instruct(toy, trainable=["projector", "lm_lora"], lr={"projector": 1e-3, "lm_lora": 1e-3}))
    stage = recipe.stages[0]
    sm = load_stage_model(recipe, stage, base)
    with torch.no_grad():  # stand-in for training: every trainable tensor moves
        for ps in sm.groups.values():
            for p in ps:
                p.add_(torch.randn_like(p) * 0.1)
    gathered = {k.removeprefix("llava."): v.clone() for k, v in SupervisedLoss(sm.llava).state_dict().items()}
    live = sm.peft_model.merge_and_unload().state_dict()
    merged = merged_lora_model(base, stage, gathered).state_dict()
    assert merged.keys() == live.keys() and not any("lora" in k for k in merged)
    for k in live:
        torch.testing.assert_close(merged[k], live[k], msg=k)
    del gathered["model.multi_modal_projector.linear_1.weight"]  # a trained tensor missing is an error, not the old value
    with pytest.raises(RuntimeError, match="multi_modal_projector"):
        merged_lora_model(base, stage, gathered)


def test_fsdp_launch_on_cpu_is_refused_not_run_as_ddp(monkeypatch):
    """accelerate turns an FSDP config on CPU into plain DDP without a word; the trainer says so instead."""
    from kanva.train.trainer import _check_engine, make_accelerator

    acc = make_accelerator(recipe_from_dict({"model": {"preset": "tiny"}, "stages": [_align({"captions": "x"})]}))
    _check_engine(acc)  # no FSDP asked: fine
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(KanvaError, match="asks for FSDP, but accelerate runs it only on GPUs"):
        _check_engine(acc)


def test_released_checkpoints_start_a_recipe_or_fail_clearly(base, toy, tmp_path, monkeypatch):
    """A transformers-format folder without Kanva's build record (as llava-hf's) starts a LoRA stage; a hub id
    that cannot be fetched and QLoRA without a GPU each fail with the field and the reason."""
    import shutil

    from kanva.train.stage_model import load_stage_model

    hf = tmp_path / "llava-hf-like"
    shutil.copytree(base, hf)
    (hf / "kanva.json").unlink()
    lora = {"trainable": ["projector", "lm_lora"], "lr": {"projector": 1e-3, "lm_lora": 1e-3}, "steps": 2}
    res = run_recipe(_recipe(hf, _instruct(toy, **lora)), tmp_path / "run")
    assert res[0].final_dir and (Path(res[0].final_dir) / "model.safetensors").is_file()

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = recipe_from_dict({"model": {"hub": "llava-hf/llava-1.5-7b-hf"}, "stages": [_align(toy)]}, source="hub.yaml")
    with pytest.raises(KanvaError, match=r"hub\.yaml\.model\.hub: cannot get 'llava-hf/llava-1\.5-7b-hf'"):
        run_recipe(hub, tmp_path / "hub")
    with pytest.raises(KanvaError, match="set exactly one of `path`"):
        recipe_from_dict({"model": {"hub": "a/b", "preset": "tiny"}, "stages": [_align(toy)]})

    qlora = _recipe(base, _instruct(toy, **lora, lora={"r": 4, "bits": 4}))
    if not torch.cuda.is_available():
        with pytest.raises(KanvaError, match=r"lora\.bits 4 \(QLoRA\) loads the LM in 4-bit through bitsandbytes, which needs a CUDA GPU"):
            load_stage_model(qlora, qlora.stages[0], base)


def test_a_text_stage_ignores_the_vision_parts_so_graft_gives_the_model_it_would_have_made(base, tmp_path):
    """The quickstart's premise for reading beside the vision stage: a text-only stage trained from the base model
    and grafted onto another model's vision tower and projector has exactly the tensors of the same stage trained
    from that model."""
    from kanva.model.graft import graft

    text = [{"id": str(i), "conversations": [{"from": "human", "value": f"cow cow fork {i}? Is there a cow?"},
                                             {"from": "gpt", "value": "Yes" if i % 2 else "No"}]} for i in range(12)]
    (tmp_path / "text.json").write_text(json.dumps(text))
    stage = {"name": "read", "trainable": ["lm"], "lr": {"lm": 1e-3}, "data": [{"path": str(tmp_path / "text.json")}],
             "steps": 3, "batch_size": 4, "max_length": 64}
    assert main(["model", "build", "--preset", "tiny", "--seed", "1", "--out", str(tmp_path / "other")]) == 0
    # "vision": the base's LM with another encoder and projector, as the vision stage makes
    graft(base, tmp_path / "other", tmp_path / "vision")
    run_recipe(_recipe(base, stage), tmp_path / "from-base")
    run_recipe(_recipe(tmp_path / "vision", stage), tmp_path / "from-vision")
    grafted = graft(tmp_path / "from-base" / "read" / "final", tmp_path / "vision", tmp_path / "grafted")
    a, b = _weights(grafted), _weights(tmp_path / "from-vision" / "read" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    trained, v = _weights(tmp_path / "from-base" / "read" / "final"), _weights(tmp_path / "vision")
    assert any(not torch.equal(trained[k], v[k]) for k in a if k.startswith("language_model."))  # the LM trained
    assert any(not torch.equal(trained[k], v[k]) for k in a if not k.startswith("language_model."))  # parts swapped
    assert (grafted / "kanva_train.json").is_file()  # the training record comes along
    with pytest.raises(KanvaError, match="--force"):
        graft(base, tmp_path / "other", tmp_path / "vision")
    assert main(["model", "build", "--preset", "tiny", "--out", str(tmp_path / "deep"),
                 "--set", "vision_config.num_hidden_layers=3"]) == 0
    with pytest.raises(KanvaError, match=r"`vision_config` differs in \['num_hidden_layers'\]"):
        graft(base, tmp_path / "deep", tmp_path / "bad")
    assert main(["model", "graft", "--lm", str(base), "--vision", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "bad")]) == 2
