"""A toy LLaVA data set the project makes itself: coloured shapes on a plain background.

Writes `images/*.png`, `captions.json` (one short caption per image: the `align` stage's data) and
`instruct.json` (1-4 question/answer turns per image about colour, shape, count and position, plus a
few text-only samples: the `instruct` stage's data). Conversations vary in length on purpose, so
length-grouped batching has something to group. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from kanva.words import plural

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 205, 30),
           "purple": (140, 60, 180), "orange": (245, 140, 30)}  # fmt: skip
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {"white": (250, 250, 250), "grey": (200, 200, 200), "black": (20, 20, 20)}


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else plural(word)}"


def _scene(rng: random.Random, size: int) -> tuple[Image.Image, list[dict], str]:
    bg = rng.choice(list(BACKGROUNDS))
    img = Image.new("RGB", (size, size), BACKGROUNDS[bg])
    draw = ImageDraw.Draw(img)
    objs = []
    n = rng.randint(1, 3)
    cell = size // n
    for k in range(n):  # one object per vertical band: positions are unambiguous
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        s = rng.randint(cell // 2, max(cell // 2, cell - 4))
        x0 = k * cell + (cell - s) // 2
        y0 = rng.randint(2, size - s - 2)
        _draw(draw, shape, (x0, y0, x0 + s, y0 + s), COLOURS[colour])
        objs.append({"colour": colour, "shape": shape, "x": k, "n": n})
    return img, objs, bg


def _caption(objs: list[dict], bg: str) -> str:
    names = [f"a {o['colour']} {o['shape']}" for o in objs]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed[0].upper()}{listed[1:]} on a {bg} background."


def _qa(rng: random.Random, objs: list[dict], bg: str) -> list[tuple[str, str]]:
    pos = {0: "on the left", 1: "in the middle", 2: "on the right"} if len(objs) == 3 else {0: "on the left", 1: "on the right"}
    o = rng.choice(objs)
    n_colour = sum(x["colour"] == o["colour"] for x in objs)
    n_same = sum(x["colour"] == o["colour"] and x["shape"] == o["shape"] for x in objs)
    detail = " ".join(f"{pos[x['x']].capitalize()} is a {x['colour']} {x['shape']}." for x in objs) if len(objs) > 1 else ""
    pool = [
        ("How many shapes are in the image?", f"There {'is' if len(objs) == 1 else 'are'} {_plural(len(objs), 'shape')}."),
        ("What colour is the background?", f"The background is {bg}."),
        (f"Is there a {o['colour']} {o['shape']}?", f"Yes, there is a {o['colour']} {o['shape']}."),
        ("Describe the image in detail.", (_caption(objs, bg) + " " + detail).strip()),
    ]  # fmt: skip
    if n_colour == 1:
        pool.append((f"What shape is {o['colour']}?", f"The {o['colour']} shape is a {o['shape']}."))
    absent = [c for c in COLOURS if c not in {x["colour"] for x in objs}]
    if absent:
        c = rng.choice(absent)
        pool.append((f"Is there anything {c}?", f"No, nothing in the image is {c}."))
    if len(objs) > 1 and n_same == 1:
        pool.append((f"Where is the {o['colour']} {o['shape']}?", f"It is {pos[o['x']]}."))
    rng.shuffle(pool)
    return pool[: rng.randint(1, 4)]


TEXT_ONLY = [
    ("What colour do you get by mixing blue and yellow?", "Mixing blue and yellow gives green."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("Name a shape with four equal sides.", "A square has four equal sides."),
    ("Is a circle round?", "Yes, a circle is round."),
]


def make_toy_data(out_dir: str | Path, n_images: int = 48, seed: int = 0, size: int = 64) -> dict[str, Path]:
    """Write the toy set into `out_dir`; returns the paths of `captions.json`, `instruct.json`, `images`."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    captions, instruct = [], []
    for i in range(n_images):
        img, objs, bg = _scene(rng, size)
        name = f"images/toy_{i:04d}.png"
        img.save(out / name)
        captions.append({"id": f"cap-{i:04d}", "image": name, "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image briefly."},
            {"from": "gpt", "value": _caption(objs, bg)}]})  # fmt: skip
        conv = []
        for t, (q, a) in enumerate(_qa(rng, objs, bg)):
            conv.append({"from": "human", "value": f"<image>\n{q}" if t == 0 else q})
            conv.append({"from": "gpt", "value": a})
        instruct.append({"id": f"ins-{i:04d}", "image": name, "conversations": conv})
    for j, (q, a) in enumerate(TEXT_ONLY):
        instruct.append({"id": f"txt-{j:04d}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]})
    from kanva.data.llava import save_llava  # validates against the data contract while writing

    paths = {"captions": out / "captions.json", "instruct": out / "instruct.json", "images": out / "images"}
    save_llava(captions, paths["captions"])
    save_llava(instruct, paths["instruct"])
    return paths
