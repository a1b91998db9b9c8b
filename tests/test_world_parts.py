"""The world's parts in isolation: config validation, glyphs and tinting, seeds, captions, planning."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from kanva.config import from_dict
from kanva.errors import KanvaError
from kanva.world.captions import CaptionObject, Captioner, CaptionText
from kanva.world.coco import COCO_CATEGORIES
from kanva.world.config import WorldConfig, load_world_config
from kanva.world.glyphs import GLYPHS, NO_GLYPH, GlyphCache, tint
from kanva.world.seeds import held_out_pairs, image_id, image_seed

PALETTE = {"red": (215, 40, 40), "blue": (40, 95, 220)}


def test_every_coco_category_is_drawn_or_listed_as_undrawable():
    names = {n for _, n, _ in COCO_CATEGORIES}
    assert set(GLYPHS) | set(NO_GLYPH) == names and not set(GLYPHS) & set(NO_GLYPH)
    assert len(GLYPHS) >= 60


def test_default_config_draws_every_glyph():
    cfg = load_world_config()
    assert set(cfg.drawn_categories()) == set(GLYPHS)
    assert set(cfg.colored_categories) <= set(GLYPHS)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"categories": ["giraffe", "dragon"]}, "unknown category 'dragon'"),
        ({"colored_categories": ["fire hydrant"]}, "'fire hydrant' cannot be drawn"),
        ({"scenes": {"moon": {"background": "moon", "categories": {"cow": 1}}}}, "unknown style 'moon'"),
        ({"size_range": [0.5, 0.2]}, "size_range"),
        ({"min_objects": 0}, "min_objects"),
        ({"sign_colors": ["teal"]}, "'teal' is not in the palette"),
        ({"sign_size": [0.2, 0.1]}, "sign_size"),
    ],
)
def test_config_errors_name_the_field(patch, message):
    base = {"scenes": {"farm": {"background": "farm", "categories": {"cow": 1, "giraffe": 1}}}}
    cfg = from_dict(WorldConfig, {**base, **patch}, where="w.yaml")
    with pytest.raises(KanvaError, match=message):
        cfg.validate("w.yaml")


def test_every_glyph_renders_tight_and_nonempty():
    cache = GlyphCache(PALETTE, master_px=64)
    for name in GLYPHS:
        g = cache.get(name, 48)
        h, w = g.shape
        assert max(h, w) <= 48 and g.mask.sum() > 0.1 * h * w, name
        a = g.rgba[..., 3]  # tight: the first/last row and column hold drawn pixels
        assert a[0].max() > 0 and a[-1].max() > 0 and a[:, 0].max() > 0 and a[:, -1].max() > 0
        assert g.area == g.mask.sum()
        flipped = cache.get(name, 48, flip=True)
        assert (flipped.rgba == g.rgba[:, ::-1]).all()


def test_stop_sign_word_is_located_inside_the_glyph():
    g = GlyphCache(PALETTE, master_px=96).get("stop sign", 80)
    x, y, w, h = g.text_box
    assert 0 < x and x + w < g.shape[1] and 0 < y and y + h < g.shape[0] and w > 2 * h


def test_tint_recolours_the_body_and_keeps_outline():
    cache = GlyphCache(PALETTE, master_px=64)
    base = cache.master("car", None)
    red, blue = cache.master("car", "red"), cache.master("car", "blue")
    changed = (red[..., :3] != blue[..., :3]).any(-1) & (base[..., 3] > 200)
    assert changed.mean() > 0.2  # most of the car body follows the colour
    dark = (base[..., :3].max(-1) < 40) & (base[..., 3] > 250)
    assert (red[dark] == base[dark]).all()  # the black outline is untouched
    body = red[changed]
    assert body[:, 0].mean() > body[:, 2].mean() + 50  # and the "red" car is red


def test_tint_recolours_a_grey_body_to_the_colour_and_leaves_its_input():
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., :3], a[..., 3] = (200, 200, 200), 255
    red, blue = tint(a, (255, 0, 0)), tint(a, (0, 0, 255))
    assert (red[..., 0] > red[..., 2] + 100).all() and (blue[..., 2] > blue[..., 0] + 100).all()
    assert (red[..., 3] == 255).all() and (a[..., :3] == 200).all()  # alpha kept, the input not changed in place


def test_seeds_depend_on_split_and_index_only():
    # The same in another process with another string-hash seed (Python's hash() of "train" would not be).
    code = "from kanva.world.seeds import image_seed; print(image_seed(1, 'train', 5))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert int(out) == image_seed(1, "train", 5) != image_seed(2, "train", 5)
    seeds = {image_seed(1, s, i) for s in ("train", "test") for i in range(200)}
    assert len(seeds) == 400 and all(0 <= s < 2**53 for s in seeds)
    assert image_id("train", 0) == 1 and image_id("test", 0) != image_id("val", 0)


def test_held_out_pairs_are_deterministic_and_cooccur():
    cfg = load_world_config()
    pairs = held_out_pairs(cfg, 0)
    assert pairs == held_out_pairs(cfg, 0) and pairs != held_out_pairs(cfg, 1)
    assert len(set(pairs)) == cfg.novel_pairs
    for a, b in pairs:
        assert any({a, b} <= set(cfg.scene_priors(s)) for s in cfg.scenes)


def _captions(objs, texts=(), seed=0, scene="farm"):
    return Captioner(scene, list(objs), list(texts), 224, np.random.default_rng(seed)).captions(5)


def test_captions_count_place_and_colour_from_the_graph():
    objs = [
        CaptionObject("dog", [10, 150, 30, 30], None),
        CaptionObject("dog", [40, 150, 30, 30], None),
        CaptionObject("car", [170, 140, 40, 30], "red"),
    ]
    seen = set()
    for seed in range(12):
        caps = _captions(objs, seed=seed)
        assert len(caps) == 5 and len(set(caps)) == 5
        text = " ".join(caps).lower()
        assert "three dogs" not in text and "blue" not in text
        assert "two dogs" in text and ("red car" in text or "car is red" in text)
        seen.update(caps)
    assert len(seen) >= 25  # many different sentences for one scene graph, not one template


def test_captions_quote_sign_words_and_agree_in_number():
    caps = _captions([CaptionObject("cow", [100, 100, 40, 40], None)], [CaptionText("MILK", "blue", "sign")])
    assert any('"MILK"' in c for c in caps)
    caps = _captions([CaptionObject("sheep", [10, 10, 30, 30], None), CaptionObject("sheep", [100, 10, 30, 30], None)])
    assert not any("two sheeps" in c for c in caps)
    for seed in range(10):
        for c in _captions([CaptionObject("person", [10, 10, 30, 30], None)] * 3, seed=seed):
            assert "persons" not in c
            if c.startswith("There "):
                assert c.startswith("There are three people")


def test_plan_respects_limits():
    from kanva.world.glyphs import sign_font_path
    from kanva.world.layout import Planner, paint_ids, visibilities

    cfg = load_world_config()
    planner = Planner(cfg, 224, GlyphCache({k: tuple(v) for k, v in cfg.palette.items()}, 120), str(sign_font_path()))
    for seed in range(15):
        plan = planner.plan(np.random.default_rng(seed), set())
        assert 1 <= len(plan.objects) <= 8
        vis = visibilities(plan.objects, paint_ids(plan.objects, 224))
        assert min(vis) >= cfg.min_visible
        for o in plan.objects:
            h, w = o.glyph.shape
            assert 0 <= o.x and o.x + w <= 224 and 0 <= o.y and o.y + h <= 224
            assert max(h, w) >= 0.9 * cfg.size_range[0] * 224 * 0.75


def test_sign_size_sets_the_font_and_the_board_still_fits():
    from dataclasses import replace

    from kanva.world.glyphs import sign_font_path
    from kanva.world.layout import Planner

    cfg = load_world_config()
    glyphs = GlyphCache({k: tuple(v) for k, v in cfg.palette.items()}, 120)
    heights = {}
    for lo_hi in ([0.105, 0.13], [0.17, 0.2]):
        planner = Planner(replace(cfg, sign_size=lo_hi, text_sign_prob=1.0), 224, glyphs, str(sign_font_path()))
        hs = []
        for seed in range(12):
            sign = planner.plan(np.random.default_rng(seed), set()).sign
            x0, y0, x1, y1 = sign.board
            assert 0 <= x0 and x1 <= 224 and x1 - x0 <= 0.6 * 224 + 1
            hs.append(sign.text_box[3])
        heights[lo_hi[0]] = np.mean(hs)
    assert heights[0.17] > 1.3 * heights[0.105]


def test_an_image_whose_objects_do_not_fit_beside_its_sign_goes_without_it():
    from dataclasses import replace

    from kanva.world.glyphs import sign_font_path
    from kanva.world.layout import Planner

    cfg = load_world_config()
    # Every image asks for a sign, and the boards are as large as allowed: some scenes cannot hold both.
    big = replace(cfg, sign_size=[0.3, 0.3], text_sign_prob=1.0, size_range=[0.8, 0.9])
    planner = Planner(big, 224, GlyphCache({k: tuple(v) for k, v in cfg.palette.items()}, 120), str(sign_font_path()))
    plans = [planner.plan(np.random.default_rng(seed), set()) for seed in range(30)]
    assert all(len(p.objects) >= cfg.min_objects for p in plans)
    assert any(p.sign is None for p in plans) and any(p.sign is not None for p in plans)
