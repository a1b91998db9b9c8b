"""The staged training loop, on accelerate: one code path for CPU, one GPU, DDP, FSDP and DeepSpeed.

Per optimizer step every process:
1. sets the lr of each module group from the schedule (a function of the step);
2. takes its `grad_accum` micro-batches from the shared plan (sampler.py);
3. all-reduces the number of supervised tokens in the *global* batch, and scales each micro-batch's
   summed cross-entropy by `world * grad_accum / n_global` (accelerate divides by `grad_accum`, DDP
   averages over `world`): the update equals one big batch's token-mean loss, however the global
   batch is split over processes and micro-steps;
4. checks the loss and gradient norm are finite *before* stepping (a NaN stops the run with the
   last good checkpoint intact), clips, steps.
Checkpoints (checkpoint.py) carry everything needed to continue bit-for-bit: weights, optimizer,
RNG states and the step (the data order is recomputed from it).
One file (~400 lines): set-up, the loop and the final save share one accelerator, model and out dir, in this order.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from kanva.errors import KanvaError
from kanva.train import checkpoint as ckpt
from kanva.train.data import Collator, EncodedDataset, batch_tokens, load_stage_data
from kanva.train.loss import IGNORE, SupervisedLoss
from kanva.train.metrics import MetricsLog
from kanva.train.packing import PackedCollator
from kanva.train.modules import count_params, param_groups
from kanva.train.recipe import Recipe, Stage
from kanva.train.sampler import BatchPlan, StepBatches
from kanva.train.schedule import lr_factor
from kanva.train.stage_model import load_stage_model, merged_lora_model

DONE_FILE = "kanva_train.json"  # written last into STAGE/final: the stage is complete


class TrainingDiverged(KanvaError):
    """The loss or gradient norm became NaN/inf; the run stopped before applying that update."""


@dataclass
class StageResult:
    name: str
    final_dir: str | None  # None when the stage stopped early (--max-steps)
    steps_done: int
    total_steps: int
    loss: float | None  # last step's loss
    tokens: int  # non-padding tokens trained on (all processes)
    seconds: float
    tokens_per_s: float
    skipped: dict[str, int] = field(default_factory=dict)  # invalid samples per reason (--skip-invalid)
    truncated: int = 0  # samples whose tail was cut to max_length
    resumed_from: int = 0
    already_done: bool = False


def make_accelerator(recipe: Recipe):
    """One Accelerator per run (its DDP options are set per stage, see `run_stage`)."""
    from accelerate import Accelerator

    if torch.cuda.is_available():  # float32 matmuls in TF32 (Ampere and later) when the recipe allows it
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = recipe.tf32
    return Accelerator(mixed_precision=recipe.mixed_precision)


def run_recipe(
    recipe: Recipe,
    out_dir: str | Path,
    stage: str | None = None,
    resume: bool = False,
    skip_invalid: bool = False,
    max_steps: int | None = None,
    accelerator=None,
) -> list[StageResult]:
    """Run the recipe's stages (or just `stage`) into `out_dir`; stage i+1 starts from stage i's final."""
    out = Path(out_dir)
    acc = accelerator or make_accelerator(recipe)
    _check_engine(acc)
    _check_out_dir(recipe, out, resume, acc)
    selected = [s.name for s in recipe.stages] if stage is None else [recipe.stage(stage).name]
    results: list[StageResult] = []
    for i, st in enumerate(recipe.stages):
        if st.name not in selected:
            continue
        src = _base_model(recipe, out, acc) if i == 0 else out / recipe.stages[i - 1].name / "final"
        if not (src / DONE_FILE).is_file() and i > 0:
            raise KanvaError(
                f"stage {st.name!r} starts from {src}, which is not finished; run stage {recipe.stages[i - 1].name!r} first"
            )
        res = run_stage(acc, recipe, i, src, out / st.name, resume, skip_invalid, max_steps)
        results.append(res)
        if res.final_dir is None:  # stopped early: later stages have no starting model yet
            break
    return results


def _check_engine(acc) -> None:
    """accelerate enables FSDP only on accelerators: on CPU an FSDP config silently runs DDP. Say so."""
    import os

    from accelerate.utils import DistributedType

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and acc.distributed_type != DistributedType.FSDP:
        raise KanvaError(
            f"the accelerate config asks for FSDP, but accelerate runs it only on GPUs (and other accelerators); "
            f"here it would run {acc.distributed_type.value}. Use recipes/accelerate/ddp.yaml, or run on GPUs"
        )


def _check_out_dir(recipe: Recipe, out: Path, resume: bool, acc) -> None:
    """`OUT/recipe.yaml` records the recipe of the run; continuing with a different one is refused."""
    import yaml

    snap = out / "recipe.yaml"
    cur = recipe.to_dict()
    if snap.is_file():
        if yaml.safe_load(snap.read_text()) != cur:
            raise KanvaError(
                f"{out}: holds a run of a different recipe (see {snap}); use a new --out, or restore the recipe to continue"
            )
    elif acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        snap.write_text(yaml.safe_dump(cur, sort_keys=False))
    acc.wait_for_everyone()


def _base_model(recipe: Recipe, out: Path, acc) -> Path:
    """Stage 1's starting model: `model.path`, `model.hub` (downloaded once), or the preset built once into OUT/base."""
    if recipe.model.hub is not None:
        return _from_hub(recipe, acc)
    if recipe.model.path is not None:
        p = Path(recipe.model.path)
        if not (p / "config.json").is_file():
            raise KanvaError(f"{recipe.source}.model.path: {p} is not a model directory (no config.json)")
        return p
    base = out / "base"
    if not (base / "config.json").is_file() and acc.is_main_process:
        from kanva.model import build_preset

        build_preset(recipe.model.preset, base)  # atomic: a half-built base never looks finished
    acc.wait_for_everyone()
    return base


def _from_hub(recipe: Recipe, acc) -> Path:
    """The local snapshot of `model.hub`: the main process downloads it, the others then read the cache."""
    from huggingface_hub import snapshot_download

    repo = recipe.model.hub
    path = None
    for turn in ("main", "others"):
        if (turn == "main") == acc.is_main_process:
            try:
                path = Path(snapshot_download(repo, local_files_only=turn == "others"))
            except Exception as e:  # offline, unknown repo, gated, no disk: one message naming the field
                raise KanvaError(f"{recipe.source}.model.hub: cannot get {repo!r} from the Hugging Face hub "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        acc.wait_for_everyone()
    if not (path / "config.json").is_file():
        raise KanvaError(f"{recipe.source}.model.hub: {repo!r} has no config.json: not a transformers checkpoint")
    return path


def _pad_id(proc) -> int:
    tok = proc.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pad is None:
        raise KanvaError("the tokenizer has neither a pad nor an eos token; cannot pad batches")
    return pad


def run_stage(
    acc,
    recipe: Recipe,
    index: int,
    src: Path,
    stage_dir: Path,
    resume: bool,
    skip_invalid: bool,
    max_steps: int | None,
) -> StageResult:
    from accelerate.utils import DistributedDataParallelKwargs, DistributedType, send_to_device, set_seed

    stage: Stage = recipe.stages[index]
    final = stage_dir / "final"
    main = acc.is_main_process
    if (final / DONE_FILE).is_file():
        if not resume:
            raise KanvaError(f"{final}: stage {stage.name!r} already finished; use --resume to continue the run, or a new --out")
        info = json.loads((final / DONE_FILE).read_text())
        if main:
            print(f"[{stage.name}] already finished ({final}); skipping")
        return StageResult(**{**info["result"], "already_done": True})
    if not resume and stage_dir.exists() and any(stage_dir.iterdir()):
        raise KanvaError(f"{stage_dir}: exists from an earlier run; pass --resume to continue it, or use a new --out")
    sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if stage.lora is not None and stage.lora.bits is not None and sharded:
        raise KanvaError(f"stage {stage.name!r}: lora.bits 4 (QLoRA) runs on one process or DDP: bitsandbytes' "
                         f"4-bit weights are not sharded by FSDP/DeepSpeed here; use recipes/accelerate/ddp.yaml")

    set_seed(recipe.seed + index)  # LoRA init and dropout; a resumed run restores RNG states below
    sm = load_stage_model(recipe, stage, src, acc.mixed_precision)
    llava, peft_model, proc, groups = sm.llava, sm.peft_model, sm.proc, sm.groups

    data = load_stage_data(proc, stage, skip_invalid, acc)
    plan = BatchPlan(
        data.lengths, data.spans, stage.batch_size, stage.grad_accum, acc.num_processes,
        seed=recipe.seed + index, group_by_length=stage.group_by_length,
        modality=[0 if it.sample.get("image") else 1 for it in data.items] if stage.group_by_modality else None,
    )  # fmt: skip
    total = stage.steps if stage.steps is not None else math.ceil(stage.epochs * plan.steps_per_epoch)
    # fused: one pass over params, grads and moments per step (CPU and CUDA; also transformers.Trainer's default)
    optimizer = torch.optim.AdamW(param_groups(groups, stage), betas=(0.9, 0.999), eps=1e-8, fused=True)

    acc.step = 0  # micro-step counter behind gradient accumulation: per stage
    acc.gradient_accumulation_steps = stage.grad_accum
    if acc.distributed_type == DistributedType.DEEPSPEED:  # DeepSpeed cannot infer it without a prepared loader
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = stage.batch_size
    # A text-only micro-batch leaves the projector (and vision tower) without gradients, which DDP
    # rejects unless told to look for unused parameters (an extra graph walk: only when it can happen).
    text_only = any(not it.sample.get("image") for it in data.items)
    unused = text_only and bool({"vision", "projector"} & set(stage.trainable))
    acc.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=unused)
    model, optimizer = acc.prepare(SupervisedLoss(llava), optimizer)
    hook = ckpt.register_trainable_only(acc)

    start, prior = 0, {"tokens": 0, "elapsed": 0.0}
    last_ckpt = ckpt.latest_checkpoint(stage_dir) if resume else None
    if last_ckpt is not None:
        acc.load_state(str(last_ckpt), strict=False)  # trainable weights only; the rest is `src`
        prior = ckpt.read_state(last_ckpt)
        start = prior["step"]
        if main:
            print(f"[{stage.name}] resuming from {last_ckpt} (step {start}/{total})")
    stop = total if max_steps is None else max(start, min(total, max_steps))

    if main:
        n_train = sum(count_params(ps) for ps in groups.values())
        print(
            f"[{stage.name}] {len(data.items)} samples, {plan.steps_per_epoch} steps/epoch, {total} steps, "
            f"global batch {plan.global_batch} ({acc.num_processes} proc x {stage.batch_size} x {stage.grad_accum} accum), "
            f"trainable {', '.join(groups)} ({n_train / 1e6:.2f}M params)"
        )
    loader = torch.utils.data.DataLoader(
        EncodedDataset(proc, stage, data),
        batch_sampler=StepBatches(plan, acc.process_index, start, stop),
        collate_fn=PackedCollator() if stage.packing else Collator(_pad_id(proc)),
        num_workers=stage.num_workers,
    )
    log = MetricsLog(stage_dir / "metrics.jsonl", resume_step=start) if main else None
    bar = tqdm(total=total, initial=start, desc=stage.name, unit="step", disable=not main, dynamic_ncols=True)
    tokens, elapsed, loss = prior["tokens"], prior["elapsed"], prior.get("loss")
    saved_at = start if last_ckpt is not None else None
    state = lambda s: {"step": s, "tokens": tokens, "elapsed": elapsed, "loss": loss, "total_steps": total}  # noqa: E731

    def save(step: int) -> None:
        nonlocal saved_at
        d = ckpt.checkpoint_dir(stage_dir, step)
        acc.save_state(str(d), safe_serialization=True)
        acc.wait_for_everyone()
        if main:
            ckpt.write_state(d, state(step))  # last: marks the checkpoint complete
            ckpt.prune_checkpoints(stage_dir, stage.keep_checkpoints)
        acc.wait_for_everyone()
        saved_at = step

    batches = iter(loader)
    step = start
    try:
        for step in range(start, stop):
            t0, c0 = time.perf_counter(), time.process_time()
            factor = lr_factor(step, total, stage.warmup_ratio, stage.schedule)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            micro = [next(batches) for _ in range(stage.grad_accum)]
            counts = torch.tensor(
                [sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro),
                 sum(batch_tokens(b) for b in micro), sum(b["input_ids"].numel() for b in micro)],
                dtype=torch.float64, device=acc.device,
            )  # fmt: skip
            n_sup, n_tok, n_pos = (int(x) for x in acc.reduce(counts, reduction="sum").tolist())
            scale = acc.num_processes * stage.grad_accum / max(n_sup, 1)
            loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
            for b in micro:
                b = send_to_device(b, acc.device)  # tensors; a packed row's bounds stay Python ints
                with acc.accumulate(model):
                    ls, _ = model(**b)
                    acc.backward(ls * scale)
                loss_sum += ls.detach().double()
            loss = float(acc.reduce(loss_sum, reduction="sum")) / max(n_sup, 1)
            where = f"stage {stage.name!r}, step {step + 1}"
            keep = f"last good checkpoint: {ckpt.checkpoint_dir(stage_dir, saved_at) if saved_at else 'none (none saved yet)'}"
            if not math.isfinite(loss):
                raise TrainingDiverged(f"{where}: loss is {loss}; stopped before applying the update ({keep})")
            gnorm = None
            if stage.max_grad_norm is not None:
                norm = acc.clip_grad_norm_(model.parameters(), stage.max_grad_norm)  # None on DeepSpeed (clips itself)
                gnorm = float(norm) if norm is not None else None
                if gnorm is not None and not math.isfinite(gnorm):
                    raise TrainingDiverged(f"{where}: gradient norm is {gnorm}; stopped before applying the update ({keep})")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            tokens += n_tok
            elapsed += dt
            lrs = {g["module"]: g["lr"] for g in optimizer.param_groups}
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{max(lrs.values()):.2e}", tok_s=f"{n_tok / dt:.0f}")
            if log is not None and ((step + 1) % stage.log_every == 0 or step + 1 == stop):
                log.log({
                    "step": step + 1, "loss": loss, "lr": max(lrs.values()), "lrs": lrs, "grad_norm": gnorm,
                    "tokens": n_tok, "supervised_tokens": n_sup, "padding": 1 - n_tok / n_pos,
                    "tokens_per_s": n_tok / dt, "time": elapsed, "step_time": dt, "cpu_time": cpu,
                })  # fmt: skip
            if stage.save_every and (step + 1) % stage.save_every == 0 and step + 1 < total:
                save(step + 1)
        step = stop
    except KeyboardInterrupt:
        # Keep what is done: the weights are at a step boundary unless the interrupt hit optimizer.step().
        if acc.num_processes == 1 and step > (saved_at or 0):
            save(step)
            print(f"\n[{stage.name}] interrupted; saved step {step}; continue with --resume", flush=True)
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()

    result = StageResult(
        name=stage.name, final_dir=None, steps_done=stop, total_steps=total, loss=loss, tokens=tokens,
        seconds=elapsed, tokens_per_s=tokens / elapsed if elapsed else 0.0, skipped=dict(data.skipped),
        truncated=data.truncated, resumed_from=start,
    )  # fmt: skip
    if saved_at != stop:
        save(stop)  # "at the end" too: an interrupted final save resumes from here, not from scratch
    if stop < total:
        if main:
            print(f"[{stage.name}] stopped at step {stop}/{total} (--max-steps); continue with --resume")
    else:
        result.final_dir = str(final)
        _save_final(acc, model, peft_model, proc, src, final, result, stage, sharded)
    hook.remove()
    acc.free_memory()  # drop references to this stage's model/optimizer; resets acc.step
    if main:
        _summary(stage, stage_dir, result, data)
    return result


def _save_final(acc, model, peft_model, proc, src: Path, final: Path, result: StageResult, stage: Stage, sharded: bool) -> None:
    """Write `final` as a plain model directory: LoRA merged, processor copied, marker written last."""
    acc.wait_for_everyone()
    llava = acc.unwrap_model(model).llava
    state_dict = None
    if sharded:  # a collective: every process takes part; the full weights land on the main process
        full = acc.get_state_dict(model)
        state_dict = {k.removeprefix("llava."): v for k, v in full.items()}
    if peft_model is not None and not sharded and stage.lora.bits is None:
        llava = peft_model.merge_and_unload()  # folds the adapters into the LM's weights: a plain model again
    qlora = peft_model is not None and stage.lora.bits is not None
    if qlora and not sharded:  # the trained tensors, from the live model (its base weights are 4-bit)
        state_dict = {n: p.detach().cpu() for n, p in llava.named_parameters() if p.requires_grad}
    if acc.is_main_process:
        if peft_model is not None and (sharded or qlora):  # merge into a fresh full-precision copy of `src`
            llava, state_dict = merged_lora_model(src, stage, state_dict), None
        tmp = final.with_name("final.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        llava.save_pretrained(tmp, state_dict=state_dict)
        _save_processor(proc, src, tmp)
        info = {"stage": asdict(stage), "start_model": str(src), "result": asdict(result)}
        (tmp / DONE_FILE).write_text(json.dumps(info, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    acc.wait_for_everyone()


def _save_processor(proc, src: Path, dst: Path) -> None:
    """The processor does not change in training: save it as loaded, with the build record beside it."""
    proc.save_pretrained(dst)  # the transformers processor's files (tokenizer, image processor, template)
    if (src / "kanva.json").is_file():
        shutil.copy2(src / "kanva.json", dst / "kanva.json")


def _summary(stage: Stage, stage_dir: Path, r: StageResult, data) -> None:
    (stage_dir / "summary.json").write_text(json.dumps({**asdict(r), "skipped_examples": data.skipped_examples}, indent=1))
    loss = f"{r.loss:.4f}" if r.loss is not None else "n/a"
    print(
        f"[{stage.name}] {r.steps_done}/{r.total_steps} steps, loss {loss}, {r.tokens} tokens in "
        f"{r.seconds:.1f}s ({r.tokens_per_s:.0f} tok/s)" + (f", final model: {r.final_dir}" if r.final_dir else "")
    )
    if r.truncated:
        print(f"[{stage.name}] {r.truncated} samples longer than max_length {stage.max_length} were cut at the end "
              f"({data.truncated_tokens} tokens)")
    if r.skipped:
        print(f"[{stage.name}] skipped {sum(r.skipped.values())} invalid samples: "
              + ", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items())))  # fmt: skip
        for reason, msg in sorted(data.skipped_examples.items()):
            print(f"  e.g. {reason}: {msg}")
