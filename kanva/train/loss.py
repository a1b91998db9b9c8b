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

from kanva.errors import KanvaError

IGNORE = -100


class SupervisedLoss(nn.Module):
    """forward(batch) -> (sum of token cross-entropies, number of supervised tokens)."""

    def __init__(self, llava: nn.Module):
        super().__init__()
        self.llava = llava

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        cell_ids: torch.Tensor | None = None,
        cell_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if cell_ids is not None:  # scene cells: image tokens as weighted sums of word embeddings (processor.py)
            out = self.llava.model(inputs_embeds=self.cell_embeds(input_ids, cell_ids, cell_weights),
                                   attention_mask=attention_mask, use_cache=False)
        else:
            out = self.llava.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=pixel_values,
                use_cache=False,
            )
        hidden = out.last_hidden_state[:, :-1]  # position t predicts token t + 1
        target = labels[:, 1:]
        keep = target != IGNORE
        logits = self.llava.lm_head(hidden[keep]).float()  # [n_supervised, vocab]
        loss_sum = F.cross_entropy(logits, target[keep], reduction="sum")
        return loss_sum, keep.sum()

    def cell_embeds(self, input_ids: torch.Tensor, cell_ids: torch.Tensor, cell_weights: torch.Tensor) -> torch.Tensor:
        """Input embeddings with the image-token positions (row by row, left to right) set to the cells' sums."""
        emb = self.llava.get_input_embeddings()
        image = input_ids == self.llava.config.image_token_id
        if int(image.sum()) != len(cell_ids):
            raise KanvaError(f"the batch has {int(image.sum())} image tokens for {len(cell_ids)} scene cells")
        x = emb(input_ids.masked_fill(image, 0))
        cells = (emb(cell_ids) * cell_weights.unsqueeze(-1).to(x.dtype)).sum(1)
        return x.masked_scatter(image.unsqueeze(-1), cells.to(x.dtype))
