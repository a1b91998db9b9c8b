"""Padding-free packed rows and activation checkpointing change memory, not the maths: the loss and every
gradient equal the padded batch's without checkpointing."""

import pytest
import torch

from kanva.train.data import Collator, batch_tokens
from kanva.train.loss import SupervisedLoss
from kanva.train.modules import set_trainable
from kanva.train.packing import PackedCollator
from kanva.train.recipe import recipe_from_dict
from kanva.train.stage_model import enable_checkpointing

ALL = ["vision", "projector", "lm"]


@pytest.fixture(scope="module")
def setup(tiny_encoded):
    return tiny_encoded


def _stage():
    d = {"model": {"preset": "tiny"}, "stages": [{"name": "s", "trainable": ALL, "lr": dict.fromkeys(ALL, 1e-3),
         "data": [{"path": "x"}], "steps": 1}]}  # fmt: skip
    return recipe_from_dict(d).stages[0]


def _loss_and_grads(model_dir, batch, attn="sdpa", checkpoint=()):
    """(token-mean loss, {name: grad}, bytes autograd saved for backward)."""
    from kanva.model import load_model

    model, _ = load_model(model_dir, attn_implementation=attn)
    set_trainable(model, _stage(), [])
    enable_checkpointing(model, list(checkpoint))
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_sum, n = SupervisedLoss(model.train())(**batch)
    (loss_sum / n).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return (loss_sum / n).detach(), grads, saved[0]


@pytest.mark.parametrize("attn", ["sdpa", "eager", "kanva_packed_sdpa"])
def test_packed_row_equals_padded_batch(setup, attn, monkeypatch):
    """transformers' own attentions (block-diagonal mask from position_ids) and Kanva's per-sample sdpa."""
    seen = []  # the packed_bounds each attention call of Kanva's sdpa received
    if attn == "kanva_packed_sdpa":
        from transformers import AttentionInterface

        from kanva.train.packed_attention import packed_sdpa, register

        assert register() == attn

        def spy(*args, **kwargs):
            seen.append(kwargs.get("packed_bounds"))
            return packed_sdpa(*args, **kwargs)

        monkeypatch.setitem(AttentionInterface._global_mapping, attn, spy)
    model_dir, encs, pad = setup
    padded, packed = Collator(pad)(encs), PackedCollator()(encs)
    assert packed["input_ids"].shape == (1, sum(len(e.input_ids) for e in encs)) and "attention_mask" not in packed
    assert batch_tokens(packed) == batch_tokens(padded) < padded["input_ids"].numel()  # padding gone, tokens kept
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == len(encs)  # positions restart per sample
    assert packed["packed_bounds"] == (*starts, packed["input_ids"].shape[1])  # computed once, as ints
    ref_loss, ref_grads, _ = _loss_and_grads(model_dir, padded, attn)
    loss, grads, _ = _loss_and_grads(model_dir, packed, attn)
    if attn == "kanva_packed_sdpa":  # the collator's bounds reached every layer of the LM (tiny: 2)
        assert seen.count(packed["packed_bounds"]) >= 2
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys() and any(k.startswith("model.vision_tower") for k in grads)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-6, msg=k)


def test_packed_sdpa_slices_by_the_bounds_it_is_given():
    """Per-sample attention from the collator's bounds alone (no position_ids read in the layer); without
    bounds, transformers' sdpa (here: one causal span over the row, as no mask is given)."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from kanva.train.packed_attention import packed_sdpa

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 7, 4) for _ in range(3))
    module = SimpleNamespace(is_causal=True, training=False, num_key_value_groups=1)
    out, _ = packed_sdpa(module, q, k, v, None, packed_bounds=(0, 3, 7))
    per_sample = [F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True)
                  for a, b in ((0, 3), (3, 7))]
    torch.testing.assert_close(out, torch.cat(per_sample, dim=2).transpose(1, 2))
    whole, _ = packed_sdpa(module, q, k, v, None)
    torch.testing.assert_close(whole, F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2))
    assert not torch.allclose(whole[:, 3:], out[:, 3:])


def test_activation_checkpointing_same_gradients_less_saved(setup):
    model_dir, encs, pad = setup
    batch = Collator(pad)(encs)
    ref_loss, ref_grads, ref_saved = _loss_and_grads(model_dir, batch)
    loss, grads, saved = _loss_and_grads(model_dir, batch, checkpoint=("vision", "lm"))
    torch.testing.assert_close(loss, ref_loss)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-6, msg=k)
    assert saved < 0.6 * ref_saved, (saved, ref_saved)  # only layer inputs kept: activations shrink


def test_flash_attention_without_the_package_names_the_field(tiny_model):
    import importlib.util

    from kanva.errors import KanvaError
    from kanva.model import load_model

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    with pytest.raises(KanvaError, match="attn_implementation 'flash_attention_2': .*FlashAttention2"):
        load_model(tiny_model, attn_implementation="flash_attention_2")
