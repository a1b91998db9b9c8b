"""The vision stage: train the encoder on per-patch labels, ground the projector, save a plain Llava model dir.

The loop runs on the shared schedule (kanva/train/schedule.py) and writes resume checkpoints in the layout of
kanva/train/checkpoint.py (`OUT/checkpoints/step-N/`, `trainer_state.json` last): each holds the encoder, the
classifier, AdamW, the schedule and both random generators, so `--resume` continues to exactly the weights of
an uninterrupted run (the batches are drawn from a generator whose state is saved). Once the model is saved
the checkpoints go: the model dir is the result, and a `--resume` of a finished stage does nothing.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kanva.data.coco import CocoSet, load_coco
from kanva.errors import KanvaError
from kanva.grounding.config import PatchPretrainConfig
from kanva.grounding.frames import frame_mean, load_frames
from kanva.grounding.evaluate import evaluate_patches, feature_rms, median_positive_logit, vision_features
from kanva.grounding.images import hflip_targets, load_images, normalize
from kanva.grounding.labels import (LABELS_FILE, PatchLabelSpace, build_label_space, one_token_spellings,
                                    read_label_file, save_label_space)
from kanva.grounding.projector import (check_projector_fits, exclusive_shifts, ground_projector, init_free_rows,
                                       word_embeddings)
from kanva.grounding.targets import patch_targets
from kanva.train import checkpoint as ckpt
from kanva.train.metrics import MetricsLog
from kanva.train.schedule import lr_factor

STATE_FILE = "state.pt"  # inside a checkpoint folder, beside ckpt.STATE_FILE


def _targets(coco, images, space, size, patch, mirror=False) -> torch.Tensor:
    tmap = patch_targets(coco, space, size, patch, mirror=mirror)
    return torch.from_numpy(np.stack([tmap[im.id] for im in images]))


def run_patch_pretrain(model_dir: str | Path, cfg: PatchPretrainConfig, out_dir: str | Path,
                       resume: bool = False) -> dict:
    """Train the vision encoder on per-patch labels, ground the projector, save a Llava model dir at `out_dir`.

    `resume`: continue from the newest checkpoint in `out_dir` (from scratch when there is none)."""
    cfg.check()
    model_dir, out_dir, coco = Path(model_dir), Path(out_dir), Path(cfg.coco)
    if (out_dir / LABELS_FILE).is_file():
        if not resume:
            raise KanvaError(f"{out_dir}: holds a finished vision stage; use --resume to keep it, or a new --out")
        print(f"vision pretraining: already finished ({out_dir}); skipping", flush=True)
        return read_label_file(out_dir)["metrics"]
    last = ckpt.latest_checkpoint(out_dir) if resume else None
    if not resume and (out_dir / "checkpoints").is_dir():
        raise KanvaError(f"{out_dir}: holds checkpoints of an interrupted run; pass --resume to continue it, "
                         "or use a new --out")
    torch.manual_seed(cfg.seed)
    model, processor, ov = _load(model_dir, cfg)
    ip = processor.image_processor
    size = ip.size.get("height") or ip.size.get("shortest_edge")
    patch = model.config.vision_config.patch_size
    grid = size // patch
    mean = torch.tensor(ip.image_mean, dtype=torch.float32)
    std = torch.tensor(ip.image_std, dtype=torch.float32)

    train = load_coco(coco, cfg.split, captions=False)
    space, layout = label_plan(train, cfg, processor, ov)
    check_projector_fits(model, len(space), cfg.grounding)  # before training, not after
    images, pix = load_images(train, size, cfg.max_images)
    targets = _targets(train, images, space, size, patch)
    # Targets of flipped images, where they are not just the flipped targets ("around": see targets.py).
    mirrored = _targets(train, images, space, size, patch, mirror=True) if cfg.hflip and space.color_cells != "shared" else None
    frames = None
    if ov is not None and ov.frames_per_step:  # the split's clip frames, labelled on the pooled grid (frames.py)
        frames = load_frames(coco, cfg.split, space, size, grid, ov.clips)
        fmean = torch.tensor(frame_mean(ip.image_mean), dtype=torch.float32)
    val = None
    if cfg.val_split and (coco / "annotations" / f"instances_{cfg.val_split}.json").is_file():
        vcoco = load_coco(coco, cfg.val_split, captions=False)
        vimages, vpix = load_images(vcoco, size)
        val = (vpix, _targets(vcoco, vimages, space, size, patch))  # labels unseen in training are not in `space`

    text_cols = torch.tensor([k == "text" for k in space.kinds])
    has_text = (targets[:, :, text_cols] > 0).flatten(1).any(1)
    vision = model.model.vision_tower
    head = torch.nn.Linear(model.config.vision_config.hidden_size, len(space))
    # Positive labels are rare (most patches are background): weight them up so recall does not collapse.
    pos_rate = targets.float().mean((0, 1)).clamp(min=1e-4)
    pos_weight = ((1 - pos_rate) / pos_rate).clamp(max=5.0)
    params = list(vision.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, cfg.warmup_ratio))
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    if last is not None:
        state = torch.load(last / STATE_FILE, weights_only=False)
        vision.load_state_dict(state["vision"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start = state["step"]
        print(f"vision pretraining: resuming from {last} (step {start} of {cfg.steps})", flush=True)

    def save_checkpoint(step: int) -> None:
        d = ckpt.checkpoint_dir(out_dir, step)
        d.mkdir(parents=True, exist_ok=True)
        torch.save({"step": step, "vision": vision.state_dict(), "head": head.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state()}, d / STATE_FILE)
        ckpt.write_state(d, {"step": step})  # last: a folder without it is an interrupted save
        ckpt.prune_checkpoints(out_dir, cfg.keep_checkpoints)

    out_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out_dir / "metrics.jsonl", resume_step=start - 1, tensorboard=False)
    model.train()
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), desc="patch pretrain", unit="step", initial=start, total=cfg.steps)
    try:
        for step in bar:
            idx = torch.randint(len(pix), (cfg.batch_size,), generator=gen)
            x, t = normalize(pix[idx], mean, std), targets[idx].float()
            if cfg.hflip:
                # Mirror only images without printed words: mirrored text is not what the model will read.
                flip = (torch.rand(cfg.batch_size, generator=gen) < 0.5) & ~has_text[idx]
                x[flip] = x[flip].flip(-1)
                t[flip] = hflip_targets(t[flip], grid) if mirrored is None else mirrored[idx[flip]].float()
            if frames is not None:
                x, t = _with_frames(x, t, frames, fmean, std, ov.frames_per_step, gen, cfg.hflip)
            logits = head(vision_features(model, x))
            loss = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
            if not torch.isfinite(loss):
                raise KanvaError(f"patch pretrain: loss is {loss.item()} at step {step}; lower the lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                log.log({"step": step, "loss": loss.item(), "lr": sched.get_last_lr()[0], "time": time.time() - t0})
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(step + 1)
    finally:
        bar.close()
        log.close()

    metrics = {"steps": cfg.steps, "seconds": round(time.time() - t0, 1), "labels": len(space)}
    shifts = exclusive_shifts(space.kinds, cfg.exclusive, pos_weight)
    if shifts.any():
        # From here on the classifier is the one the LM will see: val metrics, the median and the projector.
        with torch.no_grad():
            head.bias -= shifts
        metrics["threshold_shift"] = {w: round(float(shifts[i]), 4) for i, w in enumerate(space.words) if shifts[i]}
    if val is not None:
        metrics.update({f"val_{k}": round(v, 4) for k, v in evaluate_patches(model, head, *val, mean, std).items()})
    if frames is not None and cfg.val_split and (coco / "annotations" / f"clips_{cfg.val_split}.json").is_file():
        vf, vt, _ = load_frames(coco, cfg.val_split, space, size, grid)  # block labels of held-out clips
        metrics.update({f"val_frame_{k}": round(v, 4) for k, v in evaluate_patches(model, head, vf, vt, fmean, std).items()})
    emb = word_embeddings(model, processor.tokenizer, space.reads + [space.background])
    m = median_positive_logit(model, head, pix[:256], targets[:256], mean, std)
    readout = ground_projector(model, head, emb[:-1], emb[-1], positive_logit=m, sharpen=cfg.sharpen,
                               grounding=cfg.grounding, slope=cfg.slope)
    metrics["positive_logit"] = round(m, 3)
    rms = feature_rms(model, pix[:64], mean, std)
    init_free_rows(model, readout["rows"], rms, cfg.seed)
    metrics["feature_rms"] = round(rms, 3)
    if ov is not None:  # the newline feature becomes a word too, and the video processor marks frames
        with torch.no_grad():
            model.model.image_newline.copy_(word_embeddings(model, processor.tokenizer, [ov.newline])[0])
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if layout is not None and layout["frames"]:
        _set_video_mean(out_dir, layout["frame_mean"])
    if (model_dir / "kanva.json").is_file():
        shutil.copyfile(model_dir / "kanva.json", out_dir / "kanva.json")
    save_label_space(out_dir, space, readout, metrics, layout)  # last: its presence marks the stage finished
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return metrics


def _is_onevision(model_dir: Path, cfg: PatchPretrainConfig) -> bool:
    from kanva.jsonfile import read_json

    onevision = read_json(model_dir / "config.json", "model config").get("model_type") == "llava_onevision"
    if not onevision and cfg.onevision is not None:
        raise KanvaError(f"{model_dir}: a Llava model; the vision config's `onevision` applies to OneVision "
                         "models only (--preset tiny-ov, smol-ov)")
    return onevision


def _processor(model_dir: Path, cfg: PatchPretrainConfig):
    """(processor, OneVision settings or None) of a Llava or a LlavaOnevision model directory."""
    if not _is_onevision(model_dir, cfg):
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(model_dir), None
    from kanva.grounding.config import OnevisionGrounding
    from kanva.model.onevision import OnevisionProcessor

    return OnevisionProcessor.from_pretrained(model_dir), cfg.onevision or OnevisionGrounding()


def _load(model_dir: Path, cfg: PatchPretrainConfig):
    """(model, processor, OneVision settings or None): a Llava or a LlavaOnevision model directory."""
    from transformers import LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration

    processor, ov = _processor(model_dir, cfg)
    cls = LlavaOnevisionForConditionalGeneration if ov is not None else LlavaForConditionalGeneration
    return cls.from_pretrained(model_dir, dtype=torch.float32), processor, ov


def label_plan(train: CocoSet, cfg: PatchPretrainConfig, processor, ov) -> tuple[PatchLabelSpace, dict | None]:
    """The label space and the OneVision layout (newline word, whether frames are labelled, their mean) that
    the stage saves in patch_labels.json. The world, the config and the tokenizer fix them, not the training,
    so `kanva grounding labels` can write them before the stage has run: scene text needs nothing else."""
    space = build_label_space(train, cfg.labels, cfg.color_cells, cfg.object_cells, cfg.min_cover)
    space.spellings = one_token_spellings(processor.tokenizer, space.words)
    if ov is None:
        return space, None
    layout = {"newline": ov.newline, "frames": bool(ov.frames_per_step)}
    if ov.frames_per_step:
        layout["frame_mean"] = frame_mean(processor.image_processor.image_mean)
    return space, layout


def write_label_folder(model_dir: str | Path, cfg: PatchPretrainConfig, out_dir: str | Path) -> PatchLabelSpace:
    """`kanva grounding labels`: OUT with the model's config.json and kanva.json and the patch_labels.json the
    vision stage will write (without its metrics and projector readout): what `scene-text --model` reads."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    processor, ov = _processor(model_dir, cfg)
    space, layout = label_plan(load_coco(cfg.coco, cfg.split, captions=False), cfg, processor, ov)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "kanva.json"):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out_dir / name)
    save_label_space(out_dir, space, None, {}, layout)
    return space


def _with_frames(x, t, frames, fmean, std, n: int, gen: torch.Generator, hflip: bool):
    """The batch with `n` clip frames appended (normalised with the frames' mean; mirrored at random)."""
    pix, tgt, mir = frames
    idx = torch.randint(len(pix), (n,), generator=gen)
    fx, ft = normalize(pix[idx], fmean, std), tgt[idx].float()
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        fx[flip] = fx[flip].flip(-1)
        ft[flip] = mir[idx[flip]].float()
    return torch.cat([x, fx]), torch.cat([t, ft])


def _set_video_mean(out_dir: Path, mean: list[float]) -> None:
    """The saved video processor normalises frames with the frames' mean (frames.py: the cue of a frame)."""
    import json

    from kanva.model.onevision import PROCESSOR_FILE

    path = out_dir / PROCESSOR_FILE
    record = json.loads(path.read_text())
    record["video_processor"]["image_mean"] = mean
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
