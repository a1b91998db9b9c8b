"""`sdpa` over a packed row, one sample at a time: attention costs each sample's own square.

transformers runs `sdpa` on a packed row (packing.py) under a block-diagonal mask over the whole row:
correct, but its cost grows with the row's length squared, and torch's CPU and memory-efficient
kernels then compute every masked-out block. `flash_attention_2` has a variable-length kernel for
this; where it is not installed (CPU, older GPUs) this function gives `sdpa` the same saving: it runs
causal `sdpa` on each sample's slice of the row. The slices are `packed_bounds`, the samples' start
offsets and the row's end as Python ints, which PackedCollator computes once per batch from the
samples' lengths and SupervisedLoss passes down through transformers' attention kwargs: reading them
from `position_ids` in every layer would cost a device-to-host copy (a GPU sync) per layer. Anything
that is not a packed causal row of those bounds (the vision tower, a padded batch, generation, a row
with no bounds) goes to transformers' `sdpa` unchanged, which is also correct on a packed row, only
slower. Registered with transformers' AttentionInterface under NAME, with `sdpa`'s mask function;
stage_model.py picks it for packed stages whose recipe says `sdpa` (and imports this module only then, so
transformers is imported at the top here: `packed_sdpa` runs in every layer of every step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

NAME = "kanva_packed_sdpa"


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                position_ids=None, packed_bounds: tuple[int, ...] | None = None, **kwargs):
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    bounds = packed_bounds or ()
    packed = len(bounds) > 2 and query.shape[0] == 1 and causal and query.shape[2] == key.shape[2] == bounds[-1]
    if not packed:  # not a packed row, or a single sample: transformers' sdpa as it is
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)  # fmt: skip
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    p = dropout if module.training else 0.0
    out = torch.cat(
        [F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=p,
                                        is_causal=True, scale=scaling) for a, b in zip(bounds, bounds[1:])],
        dim=2,
    )  # fmt: skip
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make NAME a valid `attn_implementation` (idempotent); returns it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
