"""The supervised-positions loss equals transformers' full-logits loss; frozen modules build no graph."""

import pytest
import torch

from kanva.train.data import Collator
from kanva.train.loss import SupervisedLoss
from kanva.train.modules import add_lora, param_groups, set_trainable
from kanva.train.recipe import LoraSpec, recipe_from_dict


@pytest.fixture(scope="module")
def setup(tiny_encoded):
    model_dir, encs, pad = tiny_encoded
    return model_dir, Collator(pad)(encs)


def _stage(trainable, lr, **extra):
    d = {"model": {"preset": "tiny"}, "stages": [{"name": "s", "trainable": trainable, "lr": lr,
         "data": [{"path": "x"}], "steps": 1, **extra}]}  # fmt: skip
    return recipe_from_dict(d).stages[0]


def test_matches_full_logits_loss(setup):
    from kanva.model import load_model

    model_dir, batch = setup
    model, _ = load_model(model_dir)
    assert (batch["attention_mask"] == 0).any()  # the batch is padded: padding must not count
    with torch.no_grad():
        ref = model(**batch).loss  # transformers: logits everywhere, mean over supervised tokens
        loss_sum, n = SupervisedLoss(model)(**batch)
    assert int(n) == int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(loss_sum / n, ref, rtol=1e-5, atol=1e-5)


def test_frozen_vision_tower_gets_no_grad_and_builds_no_graph(setup):
    from kanva.model import load_model

    model_dir, batch = setup
    model, _ = load_model(model_dir)
    groups = set_trainable(model, _stage(["projector"], {"projector": 1e-3}), [])
    seen = {}
    hook = model.model.vision_tower.register_forward_hook(
        lambda m, i, o: seen.update(grad_fn=o.last_hidden_state.grad_fn, requires_grad=o.last_hidden_state.requires_grad)
    )
    loss_sum, n = SupervisedLoss(model.train())(**batch)
    (loss_sum / n).backward()
    hook.remove()
    assert "requires_grad" in seen and not seen["requires_grad"] and seen["grad_fn"] is None  # no stored graph
    assert all(p.grad is None for p in model.model.vision_tower.parameters())
    assert all(p.grad is None for p in model.model.language_model.parameters())
    assert all(p.grad is not None for p in groups["projector"])
    assert [g["module"] for g in param_groups(groups, _stage(["projector"], {"projector": 1e-3}))] == ["projector"] * 2


def test_lm_frozen_layers_stops_backward_at_the_first_trained_layer(setup):
    from kanva.errors import KanvaError
    from kanva.model import load_model

    model_dir, batch = setup
    model, _ = load_model(model_dir)
    lm = model.model.language_model
    n = len(lm.layers) - 1
    groups = set_trainable(model, _stage(["lm"], {"lm": 1e-3}, lm_frozen_layers=n), [])
    seen = {}
    hook = lm.layers[n - 1].register_forward_hook(lambda m, i, o: seen.update(
        grad_fn=(o[0] if isinstance(o, tuple) else o).grad_fn))
    loss_sum, count = SupervisedLoss(model.train())(**batch)
    (loss_sum / count).backward()
    hook.remove()
    assert "grad_fn" in seen and seen["grad_fn"] is None  # nothing below layer n is in the graph
    frozen = [*lm.embed_tokens.parameters(), *(p for layer in lm.layers[:n] for p in layer.parameters())]
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    top = list(lm.layers[n].parameters())
    assert all(p.grad is not None for p in top)
    ids = {id(p) for p in groups["lm"]}
    assert all(id(p) in ids for p in top) and not any(id(p) in ids for p in frozen)
    with pytest.raises(KanvaError, match=f"stage .s.: lm_frozen_layers: {n + 1} would freeze all {n + 1} decoder layers"):
        set_trainable(model, _stage(["lm"], {"lm": 1e-3}, lm_frozen_layers=n + 1), [])
    with pytest.raises(KanvaError, match="lm_frozen_layers: set, but `lm` is not in trainable"):
        _stage(["projector"], {"projector": 1e-3}, lm_frozen_layers=1)


def test_lora_targets_only_the_language_model(setup):
    from kanva.model import load_model

    model_dir, batch = setup
    model, _ = load_model(model_dir)
    peft_model = add_lora(model, LoraSpec(r=2, alpha=4, dropout=0.0, target_modules=["q_proj"]))
    lora = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".language_model." in n and "q_proj" in n for n in names)  # SigLIP's q_proj untouched
    stage = _stage(["lm_lora"], {"lm_lora": 1e-3})
    groups = set_trainable(model, stage, lora)
    assert sum(p.numel() for p in groups["lm_lora"]) == sum(p.numel() for p in lora)
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())
    assert peft_model.merge_and_unload() is model  # the plain model comes back

