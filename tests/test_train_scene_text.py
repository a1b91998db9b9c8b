"""Scene text: images written as the words their grounded image tokens stand for (text-only reading stage)."""

import json

import pytest

from kanva.errors import KanvaError
from kanva.train.patch_pretrain import PatchLabelSpace
from kanva.train.scene_text import BACKGROUND, load_label_space, render_samples, scene_texts

CATS = [{"id": 21, "name": "cow", "supercategory": "animal"}, {"id": 48, "name": "fork", "supercategory": "kitchen"}]


@pytest.fixture
def world(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64,
               "texts": [{"text": "TAXI", "bbox": [48, 48, 16, 16]}]},
              {"id": 2, "file_name": "b.jpg", "width": 128, "height": 64, "texts": []}]
    anns = [{"id": 1, "image_id": 1, "category_id": 21, "bbox": [0, 0, 32, 16], "color": "red"},
            {"id": 2, "image_id": 2, "category_id": 48, "bbox": [64, 32, 64, 32]}]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return tmp_path


SPACE = PatchLabelSpace(["category", "category", "color", "text"], ["cow", "fork", "red", "TAXI"])


def test_cells_follow_the_boxes_in_raster_order(world):
    texts = scene_texts(world, "train", SPACE, image_size=32, patch=8, min_cover=0.5)
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


def test_alternate_color_cells_give_one_word_per_cell(world):
    space = PatchLabelSpace(SPACE.kinds, SPACE.words, color_cells="alternate")
    a = scene_texts(world, "train", space, image_size=32, patch=8, min_cover=0.5)["a.jpg"].split(" ")
    assert len(a) == 16 and a[:2] == ["cow", "red"] and a[15] == "TAXI"


def test_center_object_cells_write_each_object_once(world):
    space = PatchLabelSpace(SPACE.kinds, SPACE.words, object_cells="center")
    texts = scene_texts(world, "train", space, image_size=32, patch=8, min_cover=0.5)
    a = texts["a.jpg"].split(" ")
    # The cow (two cells under "cover") is written once, with its colour; the printed word keeps its cells.
    assert a.count("cow") == 1 and a[:3] == [BACKGROUND, "red", "cow"] and a[-1] == "TAXI"  # centre x = 8: cell 1
    assert texts["b.jpg"].split(" ").count("fork") == 1


def test_side_labels_follow_the_object_in_its_cell(world):
    space = PatchLabelSpace(SPACE.kinds + ["side", "side"], SPACE.words + ["left", "right"], object_cells="center")
    texts = scene_texts(world, "train", space, image_size=32, patch=8, min_cover=0.5)
    # colour, object, side, then printed words; the sign has no side.
    assert texts["a.jpg"].split(" ")[:4] == [BACKGROUND, "red", "cow", "left"] and texts["a.jpg"].endswith(" TAXI")
    assert texts["b.jpg"].split(" ").count("right") == 1 and "left" not in texts["b.jpg"]


def test_beside_color_cells_write_the_colour_before_its_object(world):
    space = PatchLabelSpace(SPACE.kinds, SPACE.words, color_cells="beside", object_cells="center")
    a = scene_texts(world, "train", space, image_size=32, patch=8, min_cover=0.5)["a.jpg"].split(" ")
    # The cow's centre is in cell 1; its colour takes cell 0: one word per cell, read as "red cow".
    assert len(a) == 16 and a[:3] == ["red", "cow", BACKGROUND] and a.count("red") == 1


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
    spelled = PatchLabelSpace(SPACE.kinds, SPACE.words, ["cow", "fork", "red", "taxi"])
    a = scene_texts(world, "train", spelled, image_size=32, patch=8, min_cover=0.5)["a.jpg"].split(" ")
    assert a[-1] == "taxi" and "TAXI" not in a
