"""Scene text: images written as the words their grounded image tokens stand for (text-only reading stage)."""

import json

import pytest

from kanva.errors import KanvaError
from kanva.cli import main
from kanva.grounding.labels import BACKGROUND, PatchLabelSpace, load_label_space
from kanva.grounding.scene_text import render_samples, scene_texts

CATS = [{"id": 21, "name": "cow", "supercategory": "animal"}, {"id": 48, "name": "fork", "supercategory": "kitchen"}]


@pytest.fixture
def world(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64,
               "texts": [{"text": "TAXI", "bbox": [48, 48, 16, 16]}]},
              {"id": 2, "file_name": "b.jpg", "width": 128, "height": 64, "texts": []},
              {"id": 3, "file_name": "c.jpg", "width": 64, "height": 64}]
    anns = [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 32, 16], "color": "red"},
            {"id": 2, "image_id": 2, "category_id": 48, "bbox": [64, 32, 64, 32]},
            {"id": 3, "image_id": 3, "category_id": 48, "bbox": [0, 0, 40, 16]}]  # half of cell (0, 2)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return tmp_path


SPACE = PatchLabelSpace(["category", "category", "color", "text"], ["cow", "fork", "red", "TAXI"], min_cover=0.5)


def test_cells_follow_the_boxes_in_raster_order(world):
    texts = scene_texts(world, "train", SPACE, image_size=32, patch=8)
    a = texts["a.jpg"].split(" ")
    # 4x4 cells; the cow box covers the first two cells of the top row: colour first, then the object.
    cells, i = [], 0
    while i < len(a):
        if a[i] == "red":
            cells.append(" ".join(a[i : i + 2]))
            i += 2
        else:
            cells.append(a[i])
            i += 1
    assert len(cells) == 16
    assert cells[:2] == ["red cow", "red cow"] and cells[15] == "TAXI"
    assert all(c == BACKGROUND for c in cells[2:15])
    # b.jpg is 128 px wide, squashed to the square input: the fork covers the bottom-right quarter.
    b = texts["b.jpg"].split(" ")
    assert len(b) == 16 and [i for i, w in enumerate(b) if w == "fork"] == [10, 11, 14, 15]


def test_center_object_cells_write_each_object_once(world):
    space = PatchLabelSpace(SPACE.kinds, SPACE.words, object_cells="center", min_cover=0.5)
    texts = scene_texts(world, "train", space, image_size=32, patch=8)
    a = texts["a.jpg"].split(" ")
    # The cow (two cells under "cover") is written once, with its colour; the printed word keeps its cells.
    assert a.count("cow") == 1 and a[:3] == [BACKGROUND, "red", "cow"] and a[-1] == "TAXI"  # centre x = 8: cell 1
    assert texts["b.jpg"].split(" ").count("fork") == 1


def test_render_replaces_the_image_and_keeps_the_conversation(world):
    texts = {"a.jpg": "red cow background"}
    s = {"id": "7", "image": "sub/a.jpg",
         "conversations": [{"from": "human", "value": "<image>\nIs there a cow?"}, {"from": "gpt", "value": "Yes"}]}
    text_only = {"id": "t", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    (r, t) = render_samples([s, text_only], texts)
    assert "image" not in r and r["id"] == "7#text"
    assert r["conversations"][0]["value"] == "red cow background\nIs there a cow?"
    assert r["conversations"][1] == s["conversations"][1] and s["image"] == "sub/a.jpg"  # input untouched
    assert t is text_only
    with pytest.raises(KanvaError, match="'8'.*not in the annotations"):
        render_samples([{**s, "id": "8", "image": "zzz.jpg"}], texts, source="f.json")


def test_label_space_needs_a_vision_pretrained_model(tmp_path):
    with pytest.raises(KanvaError, match="patch_labels.json"):
        load_label_space(tmp_path)
    (tmp_path / "patch_labels.json").write_text(json.dumps(SPACE.to_json()))
    (tmp_path / "config.json").write_text(json.dumps({"vision_config": {"image_size": 96, "patch_size": 16}}))
    space, size, patch = load_label_space(tmp_path)
    assert space.words == SPACE.words and (size, patch) == (96, 16)


def test_cells_use_the_spelling_the_lm_reads(world):
    spelled = PatchLabelSpace(SPACE.kinds, SPACE.words, ["cow", "fork", "red", "taxi"], min_cover=0.5)
    a = scene_texts(world, "train", spelled, image_size=32, patch=8)["a.jpg"].split(" ")
    assert a[-1] == "taxi" and "TAXI" not in a


def test_the_label_file_decides_the_cells_and_both_commands_write_the_same(world, tmp_path, capsys):
    # min_cover and the background word come from the model's label file, not from defaults of the reader.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vision_config": {"image_size": 32, "patch_size": 8}}))
    space = PatchLabelSpace(SPACE.kinds, SPACE.words, min_cover=0.9, background="nothing")
    (model / "patch_labels.json").write_text(json.dumps(space.to_json()))
    sample = {"id": "1", "image": "c.jpg", "conversations": [{"from": "human", "value": "<image>\nQ?"},
                                                            {"from": "gpt", "value": "A"}]}
    (tmp_path / "in.json").write_text(json.dumps([sample]))
    outs = []
    for cmd in (["grounding", "scene-text"], ["data", "scene-text"]):  # the old name is an alias
        out = tmp_path / f"{cmd[0]}.json"
        assert main([*cmd, "--input", str(tmp_path / "in.json"), "--coco", str(world), "--split", "train",
                     "--model", str(model), "--out", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    cells = json.loads(outs[0])[0]["conversations"][0]["value"].split("\n")[0].split(" ")
    assert cells == ["fork", "fork"] + ["nothing"] * 14  # the half-covered third cell is below 0.9
    assert scene_texts(world, "train", PatchLabelSpace(SPACE.kinds, SPACE.words), 32, 8)["c.jpg"].startswith(
        "fork fork fork background")  # at the default 0.2 it is labelled
