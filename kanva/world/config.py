"""WorldConfig: what the world draws (scenes, their backgrounds and category priors, sizes, colours, signs).

Loaded from YAML by `kanva.config.load_yaml` (strict); `default.yaml` in this package is the shipped world.
`validate()` checks every name against COCO and the glyph table, so a typo fails before any image is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from kanva.config import load_yaml
from kanva.errors import KanvaError
from kanva.world.backgrounds import STYLES
from kanva.world.coco import CATEGORY_ID
from kanva.world.glyphs import GLYPHS, NO_GLYPH


@dataclass
class SceneConfig:
    """One scene type.

    background: a style in `kanva.world.backgrounds.STYLES`.
    categories: category -> co-occurrence weight in this scene (how likely each drawn object is that one).
    weight: how often the scene is drawn, relative to the others.
    sign_words: words its signs may print (the world's `sign_words` when empty).
    """

    background: str
    categories: dict[str, float]
    weight: float = 1.0
    sign_words: list[str] = field(default_factory=list)


@dataclass
class WorldConfig:
    scenes: dict[str, SceneConfig]
    # Categories drawn; None = every category some scene lists. Scene priors outside it are ignored.
    categories: list[str] | None = None
    min_objects: int = 1
    max_objects: int = 8
    # Longest side of an object as a fraction of the image side: 0.18 keeps it >= 17 px at the 96 px
    # vision-encoder input; 0.45 leaves room for several objects.
    size_range: list[float] = field(default_factory=lambda: [0.18, 0.45])
    min_visible: float = 0.7  # each object keeps at least this fraction of its pixels unoccluded
    repeat_prob: float = 0.35  # chance the next object repeats a category already in the image
    max_instances: int = 4  # most instances of one category in one image
    placement_tries: int = 40  # placements tried per object before it is left out of the plan
    flip_prob: float = 0.5  # chance a glyph is mirrored
    text_sign_prob: float = 0.25  # chance an image has a sign with a printed word
    # A sign's font size as a fraction of the image side, drawn uniformly in [lo, hi]: 0.105-0.13 gives capitals
    # 7-9 px tall at the 96 px encoder input. The board is at most 0.6 of the side wide (the font shrinks to fit).
    sign_size: list[float] = field(default_factory=lambda: [0.105, 0.13])
    sign_words: list[str] = field(default_factory=lambda: ["OPEN", "EXIT", "INFO", "SALE"])
    sign_colors: list[str] = field(default_factory=lambda: ["red", "blue", "green", "yellow"])
    # Categories whose colour is varied: each instance is recoloured to a palette colour, recorded in `color`.
    colored_categories: list[str] = field(default_factory=list)
    palette: dict[str, list[int]] = field(
        default_factory=lambda: {
            "red": [215, 40, 40],
            "orange": [245, 140, 30],
            "yellow": [245, 205, 35],
            "green": [45, 160, 65],
            "blue": [40, 95, 220],
            "purple": [140, 65, 190],
            "pink": [240, 125, 185],
        }
    )
    novel_pairs: int = 12  # category pairs held out of train/val/test and shown together in `novel`
    captions_per_image: int = 5
    image_format: Literal["png", "jpg"] = "jpg"  # JPEG q90: 2.7x smaller than PNG (measured, docs/world.md)
    jpeg_quality: int = 90

    def drawn_categories(self) -> list[str]:
        """The categories this world draws, sorted by COCO id."""
        names = set(self.categories) if self.categories is not None else set()
        if self.categories is None:
            for scene in self.scenes.values():
                names.update(n for n, w in scene.categories.items() if w > 0)
        return sorted(names, key=CATEGORY_ID.__getitem__)

    def scene_priors(self, scene: str) -> dict[str, float]:
        """The scene's category weights, restricted to drawn categories with weight > 0."""
        drawn = set(self.drawn_categories())
        return {n: w for n, w in self.scenes[scene].categories.items() if n in drawn and w > 0}

    def validate(self, where: str = "world config") -> WorldConfig:
        """Raise KanvaError naming the field for anything a run would trip on later; return self."""

        def check_category(name: str, at: str) -> None:
            if name not in CATEGORY_ID:
                raise KanvaError(f"{where}: {at}: unknown category {name!r} (not one of the 80 COCO categories)")
            if name not in GLYPHS:
                raise KanvaError(
                    f"{where}: {at}: category {name!r} cannot be drawn ({NO_GLYPH[name]}); "
                    f"drawable: {', '.join(sorted(GLYPHS))}"
                )

        if not self.scenes:
            raise KanvaError(f"{where}: scenes: at least one scene is needed")
        for name in self.categories or []:
            check_category(name, "categories")
        for sname, scene in self.scenes.items():
            at = f"scenes.{sname}"
            if scene.background not in STYLES:
                raise KanvaError(f"{where}: {at}.background: unknown style {scene.background!r}; known: {sorted(STYLES)}")
            if scene.weight < 0:
                raise KanvaError(f"{where}: {at}.weight: must be >= 0, got {scene.weight}")
            for cname, w in scene.categories.items():
                check_category(cname, f"{at}.categories")
                if w < 0:
                    raise KanvaError(f"{where}: {at}.categories.{cname}: weight must be >= 0, got {w}")
        if not any(s.weight > 0 and self.scene_priors(n) for n, s in self.scenes.items()):
            raise KanvaError(f"{where}: no scene with weight > 0 draws any of the chosen categories")
        for name in self.colored_categories:
            check_category(name, "colored_categories")
        for cname, rgb in self.palette.items():
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise KanvaError(f"{where}: palette.{cname}: expected [r, g, b] in 0..255, got {rgb}")
        if self.colored_categories and not self.palette:
            raise KanvaError(f"{where}: palette: colored_categories need at least one colour")
        for cname in self.sign_colors:
            if cname not in self.palette:
                raise KanvaError(f"{where}: sign_colors: {cname!r} is not in the palette {sorted(self.palette)}")
        if not 1 <= self.min_objects <= self.max_objects <= 20:
            raise KanvaError(
                f"{where}: min_objects/max_objects: need 1 <= min <= max <= 20, got {self.min_objects}, {self.max_objects}"
            )
        lo_hi = self.size_range
        if len(lo_hi) != 2 or not 0.02 <= lo_hi[0] <= lo_hi[1] <= 0.9:
            raise KanvaError(f"{where}: size_range: need [lo, hi] with 0.02 <= lo <= hi <= 0.9, got {lo_hi}")
        for fname in ("min_visible", "repeat_prob", "flip_prob", "text_sign_prob"):
            v = getattr(self, fname)
            if not 0.0 <= v <= 1.0:
                raise KanvaError(f"{where}: {fname}: must be in [0, 1], got {v}")
        ss = self.sign_size
        if len(ss) != 2 or not 0.03 <= ss[0] <= ss[1] <= 0.3:
            raise KanvaError(f"{where}: sign_size: need [lo, hi] with 0.03 <= lo <= hi <= 0.3, got {ss}")
        if self.text_sign_prob > 0 and not self.sign_colors:
            raise KanvaError(f"{where}: sign_colors: signs need at least one colour")
        words = list(self.sign_words) + [w for s in self.scenes.values() for w in s.sign_words]
        if self.text_sign_prob > 0 and not self.sign_words:
            raise KanvaError(f"{where}: sign_words: signs need at least one word")
        for w in words:
            if not w.strip() or len(w) > 10:
                raise KanvaError(f"{where}: sign word {w!r}: must be 1 to 10 characters")
        for fname in ("max_instances", "placement_tries", "captions_per_image"):
            if getattr(self, fname) < 1:
                raise KanvaError(f"{where}: {fname}: must be >= 1, got {getattr(self, fname)}")
        if self.novel_pairs < 0:
            raise KanvaError(f"{where}: novel_pairs: must be >= 0, got {self.novel_pairs}")
        if not 1 <= self.jpeg_quality <= 100:
            raise KanvaError(f"{where}: jpeg_quality: must be in 1..100, got {self.jpeg_quality}")
        return self


def default_config_path() -> Path:
    return Path(str(resources.files("kanva.world") / "default.yaml"))


def load_world_config(path: str | Path | None = None) -> WorldConfig:
    """The world config at `path` (the shipped default when None), validated."""
    path = Path(path) if path is not None else default_config_path()
    return load_yaml(WorldConfig, path).validate(str(path))
