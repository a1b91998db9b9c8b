"""The supervised-positions loss equals transformers' full-logits loss; frozen modules build no graph."""

from pathlib import Path

import pytest
import torch

from kanva.data.llava import load_llava
from kanva.train.data import Collator
from kanva.train.loss import SupervisedLoss
from kanva.train.modules import add_lora, param_groups, set_trainable
from kanva.train.recipe import LoraSpec, recipe_from_dict
from kanva.train.toy import make_toy_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from kanva.model import build_preset, load_model

    d = tmp_path_factory.mktemp("m")
    model_dir = build_preset("tiny", d / "tiny")
    toy = make_toy_data(d / "toy", n_images=6)
    model, proc = load_model(model_dir)
    samples = load_llava(toy["instruct"])
    root = Path(toy["instruct"]).parent
    encs = [proc.encode(s, image_root=root, max_length=256, template="chat") for s in samples[:4]]
    encs.append(proc.encode(samples[-1], image_root=root, max_length=256))  # a text-only sample
    batch = Collator(proc.tokenizer.pad_token_id)(encs)
    return model_dir, batch


def _stage(trainable, lr):
    d = {"model": {"preset": "tiny"}, "stages": [{"name": "s", "trainable": trainable, "lr": lr,
         "data": [{"path": "x"}], "steps": 1}]}  # fmt: skip
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



def test_scene_cells_are_the_grounded_sums_of_their_words(setup):
    # A scene-cell sample's image tokens must be exactly what the word-grounded projector gives a patch with
    # those labels: background + sum of (word - background), each word the mean embedding of its tokens.
    from kanva.model import load_model
    from kanva.train.patch_pretrain import word_embeddings

    model_dir, _ = setup
    model, proc = load_model(model_dir)
    n = proc.num_image_tokens
    words = ["cow", "red", "fork", "TAXI"]
    rows = [[], ["cow"], ["red", "cow"], ["fork", "TAXI", "red"]]
    samples = []
    for k in range(2):  # two samples with different cells: the batch must keep each sample's own cells in order
        cells = [" ".join(rows[(i + k) % len(rows)]) or "background" for i in range(n)]
        samples.append({"id": str(k), "scene_cells": cells, "conversations": [
            {"from": "human", "value": "<image>\nIs there a cow?"}, {"from": "gpt", "value": "Yes" if k else "No"}]})
    encs = [proc.encode(s, max_length=256) for s in samples]
    assert all(e.pixel_values is None for e in encs)
    batch = Collator(proc.tokenizer.pad_token_id)(encs)
    assert batch["cell_ids"].shape[0] == 2 * n and "pixel_values" not in batch

    emb = word_embeddings(model, proc.tokenizer, words + ["background"])
    vec = dict(zip(words + ["background"], emb))
    bg = vec["background"]
    expect = torch.stack([bg + sum((vec[w] - bg for w in rows[(i + k) % len(rows)]), torch.zeros_like(bg))
                          for k in range(2) for i in range(n)])
    loss = SupervisedLoss(model)
    with torch.no_grad():
        x = loss.cell_embeds(batch["input_ids"], batch["cell_ids"], batch["cell_weights"])
        image = batch["input_ids"] == model.config.image_token_id
        torch.testing.assert_close(x[image], expect, rtol=1e-5, atol=1e-6)
        text = model.get_input_embeddings()(batch["input_ids"].masked_fill(image, 0))
        assert torch.equal(x[~image], text[~image])
        got, _ = loss(**batch)
        shuffled = {**batch, "cell_ids": batch["cell_ids"].flip(0), "cell_weights": batch["cell_weights"].flip(0)}
        assert not torch.isclose(got, loss(**shuffled)[0])  # the cells are what the model reads
