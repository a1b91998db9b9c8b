"""Padding-free batches: a micro-batch's samples end to end in one row, `position_ids` restarting at 0
for every sample (transformers' flattening convention, `DataCollatorWithFlattening`).

No attention mask is passed. transformers then reads the sample boundaries from the position ids:
`sdpa` and `eager` attend within a sample only (a block-diagonal causal mask built from the restarts,
`masking_utils.find_packed_sequence_indices`), `flash_attention_2` runs its variable-length kernel on
the same boundaries. Rotary embeddings take each token's position within its own sample, so every
sample sees exactly what it would see alone in a padded row. The first label of every sample is
IGNORE (the separator), so the last token of one sample never learns to predict the next sample's
first token. Loss and gradients therefore equal the padded batch's (tests/test_train_packing.py),
with no padded positions at all. Images are stacked in sample order, as Llava fills image tokens
left to right. The row also carries `packed_bounds` (each sample's start offset, then the row's length,
as Python ints, so reading them never syncs a GPU) for Kanva's per-sample `sdpa` (packed_attention.py).

The padded batch costs `rows x longest` positions; the packed row costs the sum of the lengths. On
`sdpa`/`eager` the attention of the packed row spans the whole row under a mask (its FLOPs grow with
the row's length squared), on `flash_attention_2` only each sample's own square.
"""

from __future__ import annotations

from itertools import accumulate


from kanva.model.vision_batch import collate_vision
from kanva.train.loss import IGNORE


class PackedCollator:
    """Collates encoded samples (`KanvaProcessor.encode`) into one row: input_ids, labels, position_ids
    of shape [1, total tokens], packed_bounds (a tuple of ints), plus the images of all samples in order."""

    def __init__(self):
        from transformers import DataCollatorWithFlattening

        self.flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)

    def __call__(self, encs: list) -> dict:
        batch = self.flatten([{"input_ids": e.input_ids, "labels": e.labels} for e in encs], return_tensors="pt")
        bounds = tuple(accumulate((len(e.input_ids) for e in encs), initial=0))
        # One vision row per sample: a OneVision model reads batch_num_images per sample (single image: AnyRes).
        return {**batch, "packed_bounds": bounds, **collate_vision([e.vision_row() for e in encs])}
