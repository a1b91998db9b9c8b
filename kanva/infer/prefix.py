"""Prefix sharing: rows that ask about the same image(s) compute their common prompt prefix once.

Evaluation asks several questions about each image (MME several subtasks per image, POPE three splits, MMBench four
circular rotations, MUIRBench/MVBench several questions per set or clip). The image tokens, hundreds per image, come
before the question and the answers are a few tokens, so prefilling the same prefix again for every question is most
of the work. Here each group of rows with the same prefix runs one forward over it (its vision inputs encoded once),
the resulting KV cache is repeated to every row of the group, and `model.generate` decodes the full rows from that
cache, laid out as

    [left pad | group's common prefix | middle pad | row's own suffix]

with attention_mask 0 on both pads. transformers' generate (5.x, `_prepare_position_ids_for_generation`) numbers
positions by the cumulative sum of the attention mask, and `prefix_positions` numbers the prefix forward the same
way, so every real token has the position it has in the unshared left-padded batch and attends to the same tokens:
the answers are the unshared ones up to float noise.

A group is the rows with the same ids up to and including their last image/video token and the same vision inputs
(compared by the tensors' bytes: the same placeholder ids over two different images are not the same prefix). Its
prefix is the rows' longest common prefix, less at least one token so that generate has a token to run on. A row
that shares with no other is a group of one (its prefix all but its last token): one forward serves the whole batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

Prompt = tuple[list[int], dict[str, torch.Tensor]]  # KanvaProcessor.encode_prompt's (ids, vision inputs)


@dataclass(frozen=True)
class Group:
    rows: list[int]  # indices into the batch, in batch order
    length: int  # tokens of the common prefix that the group's forward computes


def vision_digest(vision: dict[str, torch.Tensor]) -> bytes:
    """A digest of a row's vision inputs (names, shapes, dtypes and bytes): equal digests, equal images."""
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(vision):
        t = vision[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes())
    return h.digest()


def common_length(rows: list[list[int]]) -> int:
    """Length of the longest common prefix of `rows`, capped at the shortest row's length minus one."""
    first, cap = rows[0], min(len(r) for r in rows) - 1
    n = 0
    while n < cap and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def plan_groups(encoded: list[Prompt], media_ids: set[int]) -> list[Group] | None:
    """The batch's prefix groups (in order of their first row), or None when no two rows share a prefix with an
    image or video in it (nothing to share: the caller decodes the plain batch)."""
    keys: dict[object, list[int]] = {}
    media_end = []  # per row: the index after its last image/video token
    for i, (ids, vision) in enumerate(encoded):
        media_end.append(1 + max((j for j, t in enumerate(ids) if t in media_ids), default=-1))
        key = (tuple(ids[: media_end[i]]), vision_digest(vision)) if media_end[i] else ("alone", i)
        keys.setdefault(key, []).append(i)
    if all(len(rows) == 1 for rows in keys.values()):
        return None
    groups = []
    for rows in keys.values():
        ids = [encoded[i][0] for i in rows]
        groups.append(Group(rows, common_length(ids) if len(rows) > 1 else len(ids[0]) - 1))
        if groups[-1].length < media_end[rows[0]]:  # a prompt ending in an image token: its vision inputs
            return None  # would be needed after the cached prefix, which generate is not given
    return groups


def prefix_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids as transformers' generate derives them from an attention mask: real tokens 0, 1, 2, ...
    in order, pads 0."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)


def layout(encoded: list[Prompt], groups: list[Group], pad: int) -> dict[str, torch.Tensor]:
    """The tensors of a shared batch: `prefix_ids`/`prefix_mask` (one left-padded row per group), `input_ids`/
    `attention_mask` (one row per encoded row: the group prefix, then the row's suffix, each left-padded) and
    `group_of` (each row's group index, to repeat the prefix cache with)."""
    width = max(g.length for g in groups)
    prefix_ids = torch.full((len(groups), width), pad, dtype=torch.long)
    prefix_mask = torch.zeros((len(groups), width), dtype=torch.long)
    group_of = torch.empty(len(encoded), dtype=torch.long)
    for n, g in enumerate(groups):
        prefix_ids[n, width - g.length:] = torch.tensor(encoded[g.rows[0]][0][: g.length], dtype=torch.long)
        prefix_mask[n, width - g.length:] = 1
        group_of[g.rows] = n
    lengths = {i: g.length for g in groups for i in g.rows}
    suffix = max(len(ids) - lengths[i] for i, (ids, _) in enumerate(encoded))
    input_ids = torch.full((len(encoded), width + suffix), pad, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    input_ids[:, :width] = prefix_ids[group_of]
    attention_mask[:, :width] = prefix_mask[group_of]
    for i, (ids, _) in enumerate(encoded):
        rest = ids[lengths[i]:]
        input_ids[i, width + suffix - len(rest):] = torch.tensor(rest, dtype=torch.long)
        attention_mask[i, width + suffix - len(rest):] = 1
    return {"prefix_ids": prefix_ids, "prefix_mask": prefix_mask, "input_ids": input_ids,
            "attention_mask": attention_mask, "group_of": group_of}
