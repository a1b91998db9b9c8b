"""Example prompts for the chat page, each with a scene rendered by Kanva's own world generator.

The page offers a few one-click starters; their images are world scenes (kanva.world, rendered on first
request from fixed seeds, so every server shows the same ones and nothing is downloaded), and each prompt asks
something the scene's annotations can answer (what is there, how many of a category, what a sign says).
"""

from __future__ import annotations

import base64
import functools
import io
from collections import Counter

from kanva.words import plural

SEEDS = (11, 23, 42)
SIZE = 256


def _prompt(record: dict) -> str:
    """A question the scene answers, from its annotations."""
    cats = Counter(o["category"] for o in record["objects"])
    if record.get("texts"):
        return "What does the sign in this picture say?"
    many = [c for c, n in cats.items() if n > 1]
    if many:
        return f"How many {plural(many[0])} are in this picture?"
    return "What objects are in this picture, and where are they?"


@functools.lru_cache(maxsize=1)
def examples() -> list[dict[str, str]]:
    """[{"image": PNG data URL, "prompt": str, "scene": str}] for the page (rendered once per process)."""
    from PIL import Image

    from kanva.world.config import load_world_config
    from kanva.world.render import WorldRenderer

    renderer = WorldRenderer(load_world_config(), SIZE)
    out = []
    for seed in SEEDS:
        pixels, record = renderer.render(seed, set())
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        out.append({"image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                    "prompt": _prompt(record), "scene": str(record.get("scene", ""))})
    return out
