"""Grounding: per-patch labels from COCO boxes, the vision stage (resumable) and the word-grounded projector."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from kanva.cli import main
from kanva.data.coco import coco_from_dicts
from kanva.errors import KanvaError
from kanva.grounding.config import PatchPretrainConfig, load_pretrain_config
from kanva.grounding.labels import PatchLabelSpace, build_label_space, load_label_space, one_token_spellings
from kanva.grounding.pretrain import run_patch_pretrain
from kanva.grounding.projector import (classifier_from_projector, exclusive_shifts, ground_projector,
                                       word_embeddings)
from kanva.grounding.targets import patch_targets

CATS = [{"id": 21, "name": "cow", "supercategory": "animal"}, {"id": 48, "name": "fork", "supercategory": "kitchen"}]
COLORS = {"cow": (200, 40, 40), "fork": (40, 40, 200)}


def _world(root, split, n, seed):
    """A COCO split of 64 px images with 1-2 coloured squares (category decides the colour)."""
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        img = np.full((64, 64, 3), 230, np.uint8)
        for cat in rng.choice(CATS, size=rng.integers(1, 3), replace=False):
            x, y = (int(v) for v in rng.integers(0, 40, 2))
            img[y : y + 24, x : x + 24] = COLORS[cat["name"]]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat["id"], "bbox": [x, y, 24, 24],
                         "area": 576, "iscrowd": 0, "color": "red" if cat["name"] == "cow" else None})
        Image.fromarray(img).save(root / split / f"{i:04d}.png")
        images.append({"id": i + 1, "file_name": f"{i:04d}.png", "width": 64, "height": 64, "texts": []})
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": CATS}))


def _coco(inst: dict):
    """An in-memory COCO split (the reader's records) from instances without file names."""
    images = [{"file_name": f"{im['id']}.jpg", **im} for im in inst["images"]]
    return coco_from_dicts({**inst, "images": images}, {"annotations": []}, "mem", "train")


def _space(inst, kinds, **kw):
    """The label space of an in-memory split, patches labelled at half cover (as the hand-worked cells below)."""
    return build_label_space(_coco(inst), kinds, min_cover=0.5, **kw)


def test_patch_targets_follow_boxes():
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 32, 16], "color": "red"}]}
    space = _space(inst, ["category", "color"])
    assert space.words == ["cow", "red"]
    t = patch_targets(_coco(inst), space, image_size=32, patch=8)[1].reshape(4, 4, 2)
    # Scaled to 32 px the box is [0, 0, 16, 8]: the first two cells of the top row.
    assert t[0, :2, 0].tolist() == [1, 1] and t[0, 2:, 0].sum() == 0 and t[1:, :, 0].sum() == 0
    assert (t[..., 1] == t[..., 0]).all()  # "shared": the colour labels the same patches
    # At the default min_cover (0.2) the half-covered cells of the second row are labelled too.
    wide = patch_targets(_coco(inst), build_label_space(_coco(inst), ["category"]), image_size=32, patch=6)[1]
    assert wide[:, 0].reshape(5, 5)[:2, :3].sum() == 6


def test_center_object_cells_put_each_object_on_one_patch():
    # Two red cows, each over several cells of the 4x4 grid, and a fork: one patch per object, colour with it.
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 48, 16], "color": "red"},
                            {"id": 2, "image_id": 1, "category_id": 21, "bbox": [0, 32, 32, 32], "color": "red"},
                            {"id": 3, "image_id": 1, "category_id": 48, "bbox": [40, 40, 24, 24]}]}
    space = _space(inst, ["category", "color"], object_cells="center")
    t = patch_targets(_coco(inst), space, image_size=32, patch=8)[1].reshape(4, 4, 3)
    cow, fork, red = (space.words.index(w) for w in ("cow", "fork", "red"))
    # Centres (in 32 px): cow 1 at (12, 4) -> cell (0, 1); cow 2 at (8, 24) -> (3, 1); fork at (26, 26) -> (3, 3).
    assert t[..., cow].sum() == 2 and t[0, 1, cow] == 1 and t[3, 1, cow] == 1
    assert t[..., fork].sum() == 1 and t[3, 3, fork] == 1
    assert (t[..., red] == t[..., cow]).all()
    # "cover" (the default) labels every covered cell: more than one per object.
    assert patch_targets(_coco(inst), _space(inst, ["category"]), 32, 8)[1][:, 0].sum() > 2
    assert PatchLabelSpace.from_json(space.to_json()).object_cells == "center"
    with pytest.raises(KanvaError, match="object_cells must be one of"):
        PatchLabelSpace(["category"], ["cow"], object_cells="middle")
    with pytest.raises(KanvaError, match="color_cells must be one of"):
        PatchLabelSpace(["category"], ["cow"], color_cells="alternate", object_cells="center")
    with pytest.raises(KanvaError, match="needs object_cells 'center'"):
        PatchLabelSpace(["category"], ["cow"], color_cells="around")


def test_around_color_cells_put_the_colour_on_the_objects_other_patches():
    # A red cow over three cells of row 0 (centre in column 1), a red cow within one cell (column 0, row 3):
    # the colour on the first cow's covered cells but its centre, the second's on the cell beside it.
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 48, 16], "color": "red"},
                            {"id": 2, "image_id": 1, "category_id": 21, "bbox": [0, 48, 16, 16], "color": "red"},
                            {"id": 3, "image_id": 1, "category_id": 48, "bbox": [32, 32, 32, 32]}]}
    space = _space(inst, ["category", "color"], color_cells="around", object_cells="center")
    t = patch_targets(_coco(inst), space, image_size=32, patch=8)[1].reshape(4, 4, 3)
    cow, fork, red = space.words.index("cow"), space.words.index("fork"), space.words.index("red")
    assert t[0, :, cow].tolist() == [0, 1, 0, 0] and t[0, :, red].tolist() == [1, 0, 1, 0]
    assert t[3, :2, cow].tolist() == [1, 0] and t[3, :2, red].tolist() == [0, 1]
    assert t[:, :, fork].sum() == 1 and t[2:, 2:, red].sum() == 0  # an object without a colour: only its centre
    assert t.sum(-1).max() == 1  # one word per token
    # Mirrored (a flipped training image): the lone cow is centred in column 3, its colour still beside it.
    m = patch_targets(_coco(inst), space, image_size=32, patch=8, mirror=True)[1].reshape(4, 4, 3)
    assert m[3, 2:, cow].tolist() == [0, 1] and m[3, 2:, red].tolist() == [1, 0]


def test_count_words_take_cells_of_their_own_under_around():
    # 4x4 grid. Red cow A over column 0's rows 0-2 (centre row 1), red cow B within cell (3, 3), fork at (2, 2).
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 16, 48], "color": "red"},
                            {"id": 2, "image_id": 1, "category_id": 21, "bbox": [48, 48, 16, 16], "color": "red"},
                            {"id": 3, "image_id": 1, "category_id": 48, "bbox": [32, 32, 16, 16]}]}
    space = _space(inst, ["category", "color", "count"], color_cells="around", object_cells="center")
    t = patch_targets(_coco(inst), space, image_size=32, patch=8)[1].reshape(4, 4, -1)
    cells = {w: [tuple(int(x) for x in rc) for rc in np.argwhere(t[..., space.words.index(w)])]
             for w in ("cow", "fork", "red", "one", "two")}
    # A: its number after it in its row, past the cell its colour would take beside it (column 1), colour on
    # the rest of its cover. B, at the row's end: its number goes the other way, its colour beside it (no cover
    # left). The fork (no colour): its number on the next cell.
    assert cells == {"cow": [(1, 0), (3, 3)], "fork": [(2, 2)], "red": [(0, 0), (2, 0), (3, 2)],
                     "one": [(2, 3)], "two": [(1, 2), (3, 1)]}
    assert t.sum(-1).max() == 1  # one word per token
    # Under "shared" the number stays on the object's own cell.
    shared = _space(inst, ["category", "count"], object_cells="center")
    s = patch_targets(_coco(inst), shared, image_size=32, patch=8)[1]
    assert (s[:, shared.words.index("two")] == s[:, shared.words.index("cow")]).all()


def test_side_words_follow_the_name_and_flip_with_the_image():
    # 4x4 grid. Red cow A over column 0's rows 0-2 (centre row 1, left), red cow B within cell (3, 3) (right),
    # fork at (2, 2) (its centre on the middle: right).
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 16, 48], "color": "red"},
                            {"id": 2, "image_id": 1, "category_id": 21, "bbox": [48, 48, 16, 16], "color": "red"},
                            {"id": 3, "image_id": 1, "category_id": 48, "bbox": [24, 32, 16, 16]}]}
    space = _space(inst, ["category", "color", "count", "side"], color_cells="around", object_cells="center")
    assert space.words[-2:] == ["left", "right"] and space.kinds[-2:] == ["side", "side"]

    def cells(mirror):
        t = patch_targets(_coco(inst), space, image_size=32, patch=8, mirror=mirror)[1].reshape(4, 4, -1)
        assert mirror or t.sum(-1).max() == 1  # one word per token (mirrored, A's colour meets the fork's number)
        return {w: [tuple(int(x) for x in rc) for rc in np.argwhere(t[..., space.words.index(w)])]
                for w in ("cow", "fork", "one", "two", "left", "right")}

    # A: side then number after it, past the cell its colour would take (column 1). B, at the row's end: its
    # words go the other way, past its colour's cell beside it. The fork: "fork right" along its row, then "one"
    # before it.
    assert cells(False) == {"cow": [(1, 0), (3, 3)], "fork": [(2, 2)], "one": [(2, 1)], "two": [(1, 3), (3, 0)],
                            "left": [(1, 2)], "right": [(2, 3), (3, 1)]}
    # Mirrored: A is on the right, B on the left; each object's words keep their places beside it.
    m = cells(True)
    assert m["cow"] == [(1, 3), (3, 0)] and (1, 1) in m["right"] and (3, 2) in m["left"]
    # Under "shared" the side is on the object's own cell.
    shared = _space(inst, ["category", "side"], object_cells="center")
    s = patch_targets(_coco(inst), shared, image_size=32, patch=8)[1].reshape(4, 4, -1)
    assert s[1, 0].tolist() == [1, 0, 1, 0] and s[2, 2].tolist() == [0, 1, 0, 1]


def test_count_labels_give_each_object_how_many_of_it_there_are():
    # Two cows and a fork in image 1, one cow in image 2: "two" on both cows, "one" on the others.
    inst = {"categories": CATS, "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 16, 16]},
                            {"id": 2, "image_id": 1, "category_id": 21, "bbox": [48, 48, 16, 16]},
                            {"id": 3, "image_id": 1, "category_id": 48, "bbox": [48, 0, 16, 16]},
                            {"id": 4, "image_id": 2, "category_id": 21, "bbox": [0, 0, 16, 16]}]}
    space = _space(inst, ["category", "count"], object_cells="center")
    assert space.words == ["cow", "fork", "one", "two"] and space.kinds[2:] == ["count", "count"]
    t = patch_targets(_coco(inst), space, image_size=32, patch=8)
    one, two = t[1][:, 2].reshape(4, 4), t[1][:, 3].reshape(4, 4)
    assert two[0, 0] == 1 and two[3, 3] == 1 and two.sum() == 2  # both cows, not the fork
    assert one[0, 3] == 1 and one.sum() == 1
    assert t[2][0].tolist() == [1, 0, 1, 0]  # the lone cow
    crowd = {**inst, "annotations": [{"id": i, "image_id": 1, "category_id": 21, "bbox": [0, 0, 4, 4]}
                                     for i in range(13)]}
    with pytest.raises(KanvaError, match="13 objects of one category"):
        build_label_space(_coco(crowd), ["count"])


def test_unknown_label_kind_is_an_error():
    with pytest.raises(KanvaError, match="unknown kind"):
        build_label_space(_coco({"categories": [], "images": [], "annotations": []}), ["shape"])
    with pytest.raises(KanvaError, match="unknown kind"):
        PatchLabelSpace.from_json({"kinds": ["plural"], "words": ["dogs"]})  # a kind no longer made


@pytest.fixture(scope="module")
def tiny_dir(tiny_model):
    return tiny_model


def _pretrain_labels(tiny_dir, tmp_path, steps: int, **cfg) -> tuple[PatchPretrainConfig, dict]:
    """A short pretraining on a 16-image world with these config fields; its config and patch_labels.json."""
    _world(tmp_path / "w", "train", 16, 0)
    c = PatchPretrainConfig(coco=str(tmp_path / "w"), val_split=None, steps=steps, batch_size=8, seed=0, **cfg)
    run_patch_pretrain(tiny_dir, c, tmp_path / "out")
    return c, json.loads((tmp_path / "out" / "patch_labels.json").read_text())


def test_pretrain_learns_and_grounds_projector(tiny_dir, tmp_path):
    _world(tmp_path / "w", "train", 48, 0)
    _world(tmp_path / "w", "val", 24, 1)
    cfg = PatchPretrainConfig(coco=str(tmp_path / "w"), steps=80, batch_size=16, lr=3e-3, seed=0)
    metrics = run_patch_pretrain(tiny_dir, cfg, tmp_path / "out")
    # Both categories are distinguishable by colour alone: a working loop must get far above chance.
    assert metrics["val_image_f1"] > 0.85, metrics
    labels = json.loads((tmp_path / "out" / "patch_labels.json").read_text())
    assert labels["words"] == ["cow", "fork", "red"]

    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "out")
    tok = AutoProcessor.from_pretrained(tmp_path / "out").tokenizer
    assert len(labels["spellings"]) == 3  # how the LM reads each label (a one-token case variant where one exists)
    emb = word_embeddings(model, tok, labels["spellings"] + ["background"])
    proj = model.model.multi_modal_projector
    # linear_2 maps the label rows of linear_1 onto the words' embeddings minus the background's, scaled by
    # the measured median positive logit (and the sharpening of linear_1), and nothing else.
    m, k = metrics["positive_logit"], cfg.sharpen
    assert m > 0.5
    assert torch.allclose(proj.linear_2.weight[:, :3] * (k * m), (emb[:3] - emb[3]).T, rtol=1e-3, atol=1e-4)  # m is rounded
    assert proj.linear_2.weight[:, 3:].abs().sum() == 0
    # An empty patch maps to "background", never to ~0 (which makes the LM's RMSNorm gradients explode).
    assert torch.allclose(proj.linear_2.bias, emb[3], atol=1e-6)


def test_pretrain_with_around_mirrors_the_targets_and_records_every_setting(tiny_dir, tmp_path, monkeypatch):
    # hflip on under "around": a flipped image takes the mirrored boxes' targets (colour still beside its object).
    import kanva.grounding.pretrain as pp

    calls = []
    real = pp.patch_targets
    monkeypatch.setattr(pp, "patch_targets", lambda *a, **k: calls.append(k.get("mirror", False)) or real(*a, **k))
    _, labels = _pretrain_labels(tiny_dir, tmp_path, 2, labels=["category", "color", "count"], color_cells="around",
                                 object_cells="center", min_cover=0.3)
    assert calls == [False, True]
    # What scene text needs to lay out its cells as the encoder learnt them, read back from the model dir.
    space, size, patch = load_label_space(tmp_path / "out")
    assert (space.color_cells, space.object_cells, space.min_cover, space.background) == \
        ("around", "center", 0.3, "background")
    assert (labels["kinds"], labels["words"]) == (space.kinds, space.words) and size % patch == 0


def test_resume_continues_to_the_weights_of_an_uninterrupted_run(tiny_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    import kanva.train.checkpoint as ckpt

    _world(tmp_path / "w", "train", 16, 0)
    fields = {"coco": str(tmp_path / "w"), "val_split": None, "steps": 4, "batch_size": 8, "save_every": 2,
              "log_every": 1, "color_cells": "around", "object_cells": "center"}
    (tmp_path / "vision.yaml").write_text(yaml.safe_dump(fields))
    args = ["grounding", "pretrain", "--model", str(tiny_dir), "--config", str(tmp_path / "vision.yaml")]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0

    real = ckpt.write_state

    def interrupt(d, state):  # the run stops right after its first checkpoint (step 2 of 4)
        real(d, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "write_state", interrupt)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "cut")] == [2]
    assert main([*args, "--out", str(tmp_path / "cut")]) == 2  # not without --resume
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0

    a, b = (load_file(tmp_path / d / "model.safetensors") for d in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]  # no step lost or repeated
    assert not (tmp_path / "cut" / "checkpoints").exists()
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0  # finished: nothing to do


def test_config_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "vision.yaml"
    bad.write_text("color_cells: beside\n")
    with pytest.raises(KanvaError, match=f"{bad}: color_cells must be one of"):
        load_pretrain_config(bad)
    bad.write_text("labels: [category, plural]\n")
    with pytest.raises(KanvaError, match="labels: unknown kind"):
        load_pretrain_config(bad)
    bad.write_text("steps: many\n")
    with pytest.raises(KanvaError, match=r"vision.yaml.steps"):
        load_pretrain_config(bad)
    with pytest.raises(KanvaError, match="exclusive.*'count'"):
        PatchPretrainConfig(exclusive=["count"]).check()
    with pytest.raises(KanvaError, match="grounding must be one of"):
        PatchPretrainConfig(grounding="hard").check()


def test_ground_projector_rejects_too_many_labels(tiny_dir):
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(tiny_dir)
    width = model.model.multi_modal_projector.linear_1.out_features
    head = torch.nn.Linear(model.config.vision_config.hidden_size, width + 1)
    with pytest.raises(KanvaError, match="do not fit"):
        d = model.config.text_config.hidden_size
        ground_projector(model, head, torch.zeros(width + 1, d), torch.zeros(d))


def _grounding_rig(tiny_dir, **ground):
    """A tiny model, two random words, a background, and token(logits): the image token of a patch whose two
    label logits are `logits`, with the projector grounded by `ground_projector(**ground)` (free rows zeroed)."""
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(tiny_dir)
    proj = model.model.multi_modal_projector
    d_in, d = proj.linear_1.in_features, model.config.text_config.hidden_size
    words, bg, x = torch.randn(2, d), torch.randn(d), torch.randn(1, d_in)
    head = torch.nn.Linear(d_in, 2)

    @torch.no_grad()
    def token(logits: tuple[float, float]) -> tuple[torch.Tensor, dict]:
        head.bias.zero_()
        head.weight.copy_(torch.stack([x[0] * logits[0], x[0] * logits[1]]) / x.pow(2).sum())
        readout = ground_projector(model, head, words, bg, **ground)
        proj.linear_1.weight[readout["rows"]:].zero_()  # the free rows (init_free_rows) are not under test here
        proj.linear_1.bias[readout["rows"]:].zero_()
        return proj(x)[0], readout

    return model, head, words, bg, token


def test_grounded_token_is_the_word_embedding(tiny_dir):
    """A patch whose label logit equals the calibration logit becomes that word's embedding; a patch that
    is confidently nothing adds nothing; a more confident one scales its word's share."""
    _, _, words, bg, rig = _grounding_rig(tiny_dir, positive_logit=2.5, sharpen=3.0)

    def token(logits):
        return rig(logits)[0]

    # gelu(3 * 2.5) = 7.5 and gelu(3 * -2.5) ~ 0: word 0's embedding, nothing of word 1 or the background
    assert torch.allclose(token((2.5, -2.5)), words[0], atol=1e-3)
    assert torch.allclose(token((-10.0, 10.0)), bg + 4 * (words[1] - bg), atol=1e-3)
    assert torch.allclose(token((-10.0, -10.0)), bg, atol=1e-3)


def test_saturating_grounding_gives_exactly_the_word_however_confident(tiny_dir):
    model, head, words, bg, rig = _grounding_rig(tiny_dir, grounding="saturating", slope=1.0)
    assert model.config.projector_hidden_act == "gelu"

    def token(logits):
        tok, readout = rig(logits)
        assert readout["rows"] == 4
        back = classifier_from_projector(model, 2, readout)  # what the probes read back
        assert torch.allclose(back.weight, head.weight, atol=1e-5) and torch.allclose(back.bias, head.bias, atol=1e-5)
        return tok

    scale = (words[0] - bg).norm()
    for sure in (1.0, 2.5, 10.0):  # past the threshold: the word itself, not a multiple of it ("scaled")
        assert (token((sure, -10.0)) - words[0]).norm() < 0.02 * scale
    assert (token((-10.0, -10.0)) - bg).norm() < 0.02 * scale
    assert (token((0.0, -10.0)) - (bg + 0.5 * (words[0] - bg))).norm() < 0.05 * scale  # unsure: half the word
    both = bg + (words[0] - bg) + (words[1] - bg)
    assert (token((3.0, 3.0)) - both).norm() < 0.03 * scale


def test_grounding_is_recorded(tiny_dir, tmp_path):
    _, labels = _pretrain_labels(tiny_dir, tmp_path, 2, grounding="saturating")
    assert labels["grounding"]["kind"] == "saturating" and labels["grounding"]["rows"] == 2 * len(labels["words"])


def test_one_token_spellings_prefer_a_single_token_case_variant():
    vocab = {" taxi": [1], " TA": [2], " Open": [3], " OPEN": [4, 5], " open": [6, 7], " CAFE": [8, 9]}

    def tok(text, add_special_tokens=False):
        if text in vocab:
            return {"input_ids": vocab[text]}
        return {"input_ids": [0, 0]}  # anything else: two tokens

    assert one_token_spellings(tok, ["TAXI", "OPEN", "CAFE"]) == ["taxi", "Open", "CAFE"]


def test_label_space_json_round_trip_and_length_check():
    space = PatchLabelSpace(["category", "text"], ["cow", "TAXI"], ["cow", "taxi"], min_cover=0.3)
    back = PatchLabelSpace.from_json(space.to_json())
    assert back == space and back.reads == ["cow", "taxi"]
    old = PatchLabelSpace.from_json({"kinds": ["category"], "words": ["cow"]})  # files before min_cover was saved
    assert old.reads == ["cow"] and (old.min_cover, old.background) == (0.2, "background")
    with pytest.raises(KanvaError, match="differ in length"):
        PatchLabelSpace.from_json({"kinds": ["category"], "words": ["cow"], "spellings": ["cow", "x"]})


def test_exclusive_shift_is_the_unweighted_decision_boundary():
    w = torch.tensor([5.0, 5.0, 2.0])
    shifts = exclusive_shifts(["category", "count", "count"], ["count"], w)
    assert shifts[0] == 0 and torch.allclose(shifts[1:], w[1:].log())
    # Where a label is right half the time (p = 0.5), the pos-weighted BCE is lowest at logit ln(w), not 0:
    # the shifted threshold is p > 0.5.
    for wi, si in zip(w[1:], shifts[1:]):
        z = si.clone().requires_grad_(True)
        loss = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(1.0), pos_weight=wi) + \
            0.5 * torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(0.0), pos_weight=wi)
        loss.backward()
        assert abs(z.grad.item()) < 1e-6
        z0 = torch.tensor(0.0, requires_grad=True)
        (0.5 * torch.nn.functional.binary_cross_entropy_with_logits(z0, torch.tensor(1.0), pos_weight=wi)
         + 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(z0, torch.tensor(0.0), pos_weight=wi)).backward()
        assert z0.grad.item() < -0.1  # at 0 the loss still falls towards ln(w)


def test_pretrain_with_exclusive_count_moves_only_the_number_thresholds(tiny_dir, tmp_path):
    kw = dict(labels=["category", "count"], object_cells="center", grounding="saturating")
    _, plain = _pretrain_labels(tiny_dir, tmp_path / "a", 2, **kw)
    _, excl = _pretrain_labels(tiny_dir, tmp_path / "b", 2, exclusive=["count"], **kw)
    assert "threshold_shift" not in plain["metrics"]
    shift = excl["metrics"]["threshold_shift"]
    words, kinds = excl["words"], excl["kinds"]
    assert set(shift) == {w for w, k in zip(words, kinds) if k == "count"} and all(v > 0 for v in shift.values())

    from transformers import LlavaForConditionalGeneration

    def head(d, labels):
        m = LlavaForConditionalGeneration.from_pretrained(d / "out")
        return classifier_from_projector(m, len(labels["words"]), labels["grounding"])

    a, b = head(tmp_path / "a", plain), head(tmp_path / "b", excl)
    assert torch.allclose(a.weight, b.weight)  # same seed, same encoder: only the thresholds differ
    for i, (w, k) in enumerate(zip(words, kinds)):
        assert b.bias[i].item() == pytest.approx(a.bias[i].item() - shift.get(w, 0.0), abs=1e-4)
