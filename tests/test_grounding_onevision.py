"""Grounding a OneVision model: frames labelled on the pooled grid, the newline feature a word, and scene text laid
out token for token as transformers lays out a single image, a multi-image sample and a video."""

from __future__ import annotations

import json

import pytest
import torch

from kanva.cli import main
from kanva.data.sequences import load_clips
from kanva.errors import KanvaError
from kanva.grounding.frames import frame_targets, pooled_side
from kanva.grounding.labels import load_label_space


@pytest.fixture(scope="module")
def grounded(tmp_path_factory):
    d = tmp_path_factory.mktemp("ovg")
    world, base, vision = d / "w", d / "base", d / "vision"
    assert main(["world", "generate", "--out", str(world), "--train", "12", "--val", "0", "--test", "0", "--size",
                 "64", "--sets", "train=3", "--clips", "train=3", "val=2", "--seed", "0", "--workers", "1", "--quiet"]) == 0
    assert main(["model", "build", "--preset", "tiny-ov", "--out", str(base), "--set",
                 "image_grid_pinpoints=[[32,32]]"]) == 0
    cfg = d / "v.yaml"
    cfg.write_text("steps: 3\nbatch_size: 4\nobject_cells: center\nonevision: {frames_per_step: 2}\n")
    assert main(["grounding", "pretrain", "--model", str(base), "--coco", str(world), "--config", str(cfg),
                 "--out", str(vision)]) == 0
    return world, vision


def test_frame_targets_are_constant_on_each_pooled_block(grounded):
    world, vision = grounded
    space, size, patch = load_label_space(vision)
    grid = size // patch
    labelled = 0
    for clip, t in [(c, t) for c in load_clips(world, "train").clips.values() for t in range(c.length)]:
        tg = torch.from_numpy(frame_targets(clip, t, space, grid)).view(grid, grid, -1).float()
        pooled = torch.nn.functional.interpolate(tg.permute(2, 0, 1)[None], size=[grid // 2] * 2, mode="bilinear")[0]
        # transformers' pooling of the targets changes nothing: each block is one label on all four patches
        assert torch.equal(pooled, pooled.round()) and pooled.sum(0).max() <= 1
        labelled += int(pooled.sum())
    assert labelled > 0
    with pytest.raises(KanvaError, match="even grid"):
        pooled_side(5)


def test_saved_model_marks_frames_and_newline_is_a_word(grounded):
    _, vision = grounded
    labels = json.loads((vision / "patch_labels.json").read_text())
    proc = json.loads((vision / "processor_config.json").read_text())
    assert labels["onevision"]["newline"] == "|" and labels["onevision"]["frames"]
    assert 0 <= labels["metrics"]["val_frame_patch_f1"] <= 1  # held-out clips' block labels
    assert proc["video_processor"]["image_mean"] == [m - 0.5 for m in proc["image_processor"]["image_mean"]]
    from transformers import LlavaOnevisionForConditionalGeneration

    from kanva.grounding.projector import word_embeddings
    from kanva.model.onevision import OnevisionProcessor

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(vision)
    proc = OnevisionProcessor.from_pretrained(vision)
    assert torch.allclose(model.model.image_newline, word_embeddings(model, proc.tokenizer, ["|"])[0])
    # what the model is given at inference: a frame is the same picture as an image, shifted by 0.5 / std
    from PIL import Image

    from kanva.model.video import Video

    pic = Image.new("RGB", (32, 32), (200, 30, 90))
    frame = proc.video_pixels(Video([pic]))[0]
    image = proc.vision_inputs([pic], [])["pixel_values"][0, 0]
    assert torch.allclose(frame, image + 0.5 / 0.5, atol=1e-5)


def _samples(world):
    sets = json.loads((world / "annotations" / "sets_train.json").read_text())["sets"]
    clip = json.loads((world / "annotations" / "clips_train.json").read_text())["videos"][0]
    still = json.loads((world / "annotations" / "instances_train.json").read_text())["images"][0]["file_name"]
    q = [{"from": "gpt", "value": "Yes."}]
    return [
        {"id": "one", "image": f"train/{still}", "conversations": [{"from": "human", "value": "<image>\nIs it?"}, *q]},
        {"id": "many", "image": [f"sets/train/{f}" for f in sets[0]["file_names"]],
         "conversations": [{"from": "human", "value": "".join("<image>\n" for _ in sets[0]["file_names"]) + "Same?"}, *q]},
        {"id": "clip", "video": f"clips/train/{clip['video']}",
         "conversations": [{"from": "human", "value": "<video>\nWhere does it go?"}, *q]},
    ]


def test_scene_text_is_the_token_layout_of_transformers(grounded, tmp_path):
    """For each kind of sample the layout gives one cell per image token, with the newline word exactly where
    LlavaOnevision inserts `image_newline`, and `kanva grounding scene-text` writes those cells."""
    from transformers import LlavaOnevisionForConditionalGeneration

    from kanva.data.coco import load_coco
    from kanva.data.llava import save_llava
    from kanva.data.sequences import load_sets
    from kanva.grounding.labels import read_label_file
    from kanva.grounding.layout import OnevisionLayout
    from kanva.grounding.scene_text import clip_cells, sampled_frames, scene_cells
    from kanva.model.onevision import OnevisionProcessor

    world, vision = grounded
    samples = _samples(world)
    src, out = tmp_path / "in.json", tmp_path / "out.json"
    save_llava(samples, src)
    assert main(["grounding", "scene-text", "--input", str(src), "--coco", str(world), "--split", "train",
                 "--model", str(vision), "--out", str(out)]) == 0
    texts = {r["id"]: r["conversations"][0]["value"] for r in json.loads(out.read_text())}
    space, size, patch = load_label_space(vision)
    layout = OnevisionLayout.of(vision, read_label_file(vision))
    cells = scene_cells(load_coco(world, "train", captions=False), space, size, patch)
    cells.update(scene_cells(load_sets(world, "train", captions=False).coco, space, size, patch))
    videos = clip_cells(load_clips(world, "train"), space, size // patch)
    name = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731
    tokens = {
        "one": layout.single(cells[name(samples[0]["image"])]),
        "many": [c for p in samples[1]["image"] for c in layout.multi(cells[name(p)])],
        "clip": layout.video(sampled_frames(videos[name(samples[2]["video"])], layout)),
    }
    proc = OnevisionProcessor.from_pretrained(vision)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(vision).eval()
    media = {proc.tokenizer.convert_tokens_to_ids(t) for t in ("<image>", "<video>")}
    for s in samples:
        enc = proc.encode(s, image_root=world)
        with torch.no_grad():
            embeds = model.model(input_ids=torch.tensor([enc.input_ids]), **enc.vision_row(),
                                 output_hidden_states=True).hidden_states[0][0]
        span = [i for i, t in enumerate(enc.input_ids) if t in media]
        newline = [k for k, i in enumerate(span) if torch.equal(embeds[i], model.model.image_newline)]
        cell = tokens[s["id"]]
        assert len(cell) == len(span), s["id"]
        assert [k for k, c in enumerate(cell) if c == "|"] == newline and newline, s["id"]
        prompt = s["conversations"][0]["value"]
        for part in _parts(cell):  # the text is the prompt with each placeholder replaced by its cells
            prompt = prompt.replace("<image>" if "<image>" in prompt else "<video>", part, 1)
        assert texts[f"{s['id']}#text"] == prompt, s["id"]


def test_labels_write_before_training_what_the_stage_writes_and_scene_text_reads(grounded, tmp_path):
    """`kanva grounding labels` on the stage's base model and config writes the label file the stage wrote, less
    its metrics and projector readout, so scene text made from it is the same bytes (the quickstart makes its
    scene text that way while the encoder trains)."""
    from kanva.data.llava import save_llava

    world, vision = grounded
    d = vision.parent
    assert main(["grounding", "labels", "--model", str(d / "base"), "--coco", str(world), "--config", str(d / "v.yaml"),
                 "--out", str(tmp_path / "labels")]) == 0
    early = json.loads((tmp_path / "labels" / "patch_labels.json").read_text())
    late = json.loads((vision / "patch_labels.json").read_text())
    assert early["grounding"] is None and early["metrics"] == {} and late["metrics"]
    assert {k: v for k, v in early.items() if k not in ("grounding", "metrics")} == \
        {k: v for k, v in late.items() if k not in ("grounding", "metrics")}
    save_llava(_samples(world), tmp_path / "in.json")
    texts = []
    for model in (vision, tmp_path / "labels"):
        out = tmp_path / f"{model.name}.json"
        assert main(["grounding", "scene-text", "--input", str(tmp_path / "in.json"), "--coco", str(world),
                     "--split", "train", "--model", str(model), "--out", str(out)]) == 0
        texts.append(json.loads(out.read_text()))
    assert texts[0] == texts[1] and len(texts[0]) == 3
    assert main(["grounding", "labels", "--model", str(tmp_path / "nowhere"), "--coco", str(world),
                 "--out", str(tmp_path / "x")]) == 2  # a clear error, not a traceback


def test_scene_text_refuses_anyres_tiles(grounded, tmp_path):
    from kanva.grounding.labels import read_label_file
    from kanva.grounding.layout import OnevisionLayout

    _, vision = grounded
    cfg = json.loads((vision / "config.json").read_text())
    cfg["image_grid_pinpoints"] = [[32, 32], [32, 64]]
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KanvaError, match=r"image_grid_pinpoints \[\[32, 32\]\]"):
        OnevisionLayout.of(d, read_label_file(vision))


def _parts(cells: list[str]) -> list[str]:
    """A sample's cells cut after each newline word into one text per image (a single image: one text)."""
    parts, cur = [], []
    for c in cells:
        cur.append(c)
        if c == "|":
            parts.append(cur)
            cur = []
    single = len(parts) > 1 and len(parts[0]) > len(parts[1])  # base view + crop rows: one image
    return [" ".join(c for p in parts for c in p)] if single else [" ".join(p) for p in parts]
