"""A stage's data: the mixture's files, checked up front, encoded lazily, padded into batches.

Before training, every sample is encoded once (`KanvaProcessor.encode`) to learn its token length
(for length-grouped batching) and to find bad samples now rather than hours into the run. A bad
sample raises an error naming file and id; with `skip_invalid` it is left out of the plan and
counted per reason. The check is split across processes and gathered, so every process ends with
the same list and raises the same error (no process left waiting in a collective).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from kanva.errors import KanvaError
from kanva.model.vision_batch import collate_vision
from kanva.train.loss import IGNORE
from kanva.train.recipe import Stage
from kanva.train.sampler import SourceSpan


@dataclass
class Item:
    source: int  # index into the stage's data mixture
    sample: dict
    length: int


@dataclass
class StageData:
    items: list[Item]
    spans: list[SourceSpan]
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict[str, str] = field(default_factory=dict)  # reason -> first message
    truncated: int = 0  # samples cut to max_length (their tail; never an image, see KanvaProcessor.encode)
    truncated_tokens: int = 0

    @property
    def lengths(self) -> list[int]:
        return [it.length for it in self.items]


def _image_root(stage: Stage, i: int) -> Path:
    d = stage.data[i]
    return Path(d.image_root) if d.image_root else Path(d.path).parent


def _check_one(proc, stage: Stage, src: int, sample: dict) -> tuple[int, int, str | None, str | None]:
    """(length, truncated tokens, None, None) for a good sample, (0, 0, reason, message) for a bad one."""
    try:
        enc = proc.encode(
            sample,
            image_root=_image_root(stage, src),
            max_length=stage.max_length,
            template=stage.template,
            source=stage.data[src].path,
            pixels=False,  # images are decoded (corrupt ones caught) but not preprocessed: 2x faster check
        )
    except KanvaError as e:
        return 0, 0, getattr(e, "reason", None) or "invalid", str(e)
    return len(enc.input_ids), enc.truncated, None, None


def load_stage_data(proc, stage: Stage, skip_invalid: bool, accelerator=None) -> StageData:
    """Read the mixture, encode every sample once (split over processes), return lengths and skips."""
    from kanva.data.llava import load_llava_checked

    files: list[list[dict]] = []
    skipped: Counter = Counter()
    for i, d in enumerate(stage.data):
        if not Path(d.path).is_file():
            raise KanvaError(f"{d.path}: no such data file (stage {stage.name!r}, data[{i}].path)")
        # Structure first (roles, empty turns, <image> count); a file that is not valid JSON at all
        # (a trailing comma, ...) is an error even with skip_invalid: there is nothing to keep.
        samples, bad = load_llava_checked(d.path, skip_invalid=skip_invalid)
        files.append(samples)
        skipped += bad
    flat = [(s, sample) for s, samples in enumerate(files) for sample in samples]

    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    mine = list(range(rank, len(flat), world))
    results = []
    bar = tqdm(mine, desc=f"{stage.name}: checking data", unit="sample", disable=rank != 0, leave=False)
    for j in bar:
        results.append((j, *_check_one(proc, stage, *flat[j])))
    if world > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
    results.sort(key=lambda r: r[0])

    items: list[Item] = []
    examples: dict[str, str] = {}
    sizes = [0] * len(files)
    truncated = [0, 0]
    for j, length, cut, reason, message in results:
        src, sample = flat[j]
        if reason is not None:
            if not skip_invalid:
                raise KanvaError(f"{message} (use --skip-invalid to skip and count such samples)")
            skipped[reason] += 1
            examples.setdefault(reason, message)
            continue
        items.append(Item(src, sample, length))
        sizes[src] += 1
        if cut:
            truncated[0] += 1
            truncated[1] += cut
    spans, start = [], 0
    for src, n in enumerate(sizes):
        if n == 0:
            raise KanvaError(f"{stage.data[src].path}: no usable samples (stage {stage.name!r}; skipped: {dict(skipped)})")
        spans.append(SourceSpan(start, n, stage.data[src].ratio))
        start += n
    return StageData(items, spans, skipped, examples, *truncated)


class EncodedDataset(Dataset):
    """Encodes on access (images + tokens), so memory holds raw samples only."""

    def __init__(self, proc, stage: Stage, data: StageData):
        self.proc, self.stage, self.items = proc, stage, data.items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        it = self.items[i]
        return self.proc.encode(
            it.sample,
            image_root=_image_root(self.stage, it.source),
            max_length=self.stage.max_length,
            template=self.stage.template,
            source=self.stage.data[it.source].path,
        )


class Collator:
    """Right-pads a micro-batch; stacks the images (and videos) of all samples in order (the model fills
    image tokens left to right, batch row by row; `collate_vision`)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, encs: list) -> dict[str, torch.Tensor]:
        n = max(len(e.input_ids) for e in encs)
        ids = torch.full((len(encs), n), self.pad, dtype=torch.long)
        labels = torch.full((len(encs), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(encs), n), dtype=torch.long)
        for r, e in enumerate(encs):
            k = len(e.input_ids)
            ids[r, :k] = torch.tensor(e.input_ids)
            labels[r, :k] = torch.tensor(e.labels)
            mask[r, :k] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        batch.update(collate_vision([e.vision_row() for e in encs]))
        return batch


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding positions of a collated batch (a packed row has no mask and no padding)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()
