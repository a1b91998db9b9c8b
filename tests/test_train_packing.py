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
def test_packed_row_equals_padded_batch(setup, attn):
    """transformers' own attentions (block-diagonal mask from position_ids) and Kanva's per-sample sdpa."""
    if attn == "kanva_packed_sdpa":
        from kanva.train.packed_attention import register

        assert register() == attn
    model_dir, encs, pad = setup
    padded, packed = Collator(pad)(encs), PackedCollator()(encs)
    assert packed["input_ids"].shape == (1, sum(len(e.input_ids) for e in encs)) and "attention_mask" not in packed
    assert batch_tokens(packed) == batch_tokens(padded) < padded["input_ids"].numel()  # padding gone, tokens kept
    starts = (packed["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == len(encs)  # positions restart per sample
    ref_loss, ref_grads, _ = _loss_and_grads(model_dir, padded, attn)
    loss, grads, _ = _loss_and_grads(model_dir, packed, attn)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys() and any(k.startswith("model.vision_tower") for k in grads)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-6, msg=k)


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
