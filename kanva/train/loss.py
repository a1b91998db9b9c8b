"""The training forward: LM logits only where a label is supervised.

`LlavaForConditionalGeneration.forward(labels=...)` projects every position through `lm_head`
(batch x seq x vocab floats, ~49k wide for SmolLM2) although only assistant tokens carry a loss.
We run the Llava base model for hidden states, gather the positions whose next token is supervised,
and apply `lm_head` there only. Same loss, a fraction of the head's FLOPs and memory.

This is an `nn.Module` (not a function) so accelerate can wrap it whole: DDP/FSDP/DeepSpeed then
see `lm_head` used inside the root module's forward, as they require.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


class SupervisedLoss(nn.Module):
    """forward(batch) -> (sum of token cross-entropies, number of supervised tokens)."""

    def __init__(self, llava: nn.Module):
        super().__init__()
        self.llava = llava

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        packed_bounds: tuple[int, ...] | None = None,
        **vision: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # A packed row (packing.py) comes with position_ids, its samples' bounds and no attention mask; the
        # bounds reach every attention call as a kwarg (packed_attention.py reads them; the others ignore
        # them). `vision`: a OneVision model's image_sizes, batch_num_images, pixel_values_videos (collate_vision).
        if packed_bounds is not None:
            vision = {**vision, "packed_bounds": packed_bounds}
        out = self.llava.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            use_cache=False,
            **vision,
        )
        hidden = out.last_hidden_state[:, :-1]  # position t predicts token t + 1
        target = labels[:, 1:]
        keep = target != IGNORE
        logits = self.llava.lm_head(hidden[keep]).float()  # [n_supervised, vocab]
        loss_sum = F.cross_entropy(logits, target[keep], reduction="sum")
        return loss_sum, keep.sum()
