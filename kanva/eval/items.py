"""The questions `kanva eval run` asks: `RunItem` (id, prompt, lazily loaded image or media, answer fields, the
unit `--limit` keeps whole), the image loaders whose errors name the question and file, and the `--limit` rule.

Every benchmark's task (kanva/eval/tasks.py) builds its items from these; the run (kanva/eval/run.py) limits them
and asks the items about one image in the same batches (`by_media`).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kanva.errors import KanvaError


@dataclass
class RunItem:
    uid: str  # the answer's question_id
    prompt: str
    image: Callable[[], Any] | None  # () -> PIL.Image, loaded lazily; None for text-only questions
    fields: dict[str, Any] = field(default_factory=dict)  # category, image: written into the answer row
    unit: str = ""  # --limit keeps units whole
    # (processor) -> [images and kanva.model.video.Video, in order]: questions over several images or a
    # video, read with the model's own processor (a video is sampled to the model's frame count)
    media: Callable[[Any], list] | None = None
    # the item's image(s) or video: `kanva eval run` batches items with the same key together, so that they
    # compute their common prompt prefix once (kanva/infer/prefix.py); None: the "image" or "video" field
    media_key: str | None = None

    def batch_key(self) -> str | None:
        return self.media_key or self.fields.get("image") or self.fields.get("video")

    def load_media(self, proc) -> list:
        if self.media is not None:
            return self.media(proc)
        return [self.image()] if self.image else []


def open_image(path: Path, where: str):
    from PIL import Image, UnidentifiedImageError

    def load():
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except FileNotFoundError:
            raise KanvaError(f"{where}: image {path} not found") from None
        except (UnidentifiedImageError, OSError) as e:
            raise KanvaError(f"{where}: image {path} cannot be read ({e})") from None

    return load


def b64_image(data: str, where: str):
    from PIL import Image, UnidentifiedImageError

    def load():
        try:
            return Image.open(io.BytesIO(base64.b64decode(data, validate=False))).convert("RGB")
        except (binascii.Error, UnidentifiedImageError, OSError) as e:
            raise KanvaError(f"{where}: the base64 image cannot be decoded ({e})") from None

    return load


def first_file(cands: list[Path]) -> Path:
    return next((c for c in cands if c.is_file()), cands[0])


def limit_items(items: list[RunItem], limit: int | None) -> list[RunItem]:
    """The first `limit` items, extended to the end of the last unit so no unit is cut."""
    if limit is None or limit >= len(items):
        return items
    if limit <= 0:
        raise KanvaError(f"--limit must be positive, got {limit}")
    sizes = Counter(it.unit for it in items)  # in order of first appearance
    keep, n = set(), 0
    for u, size in sizes.items():
        if n >= limit:
            break
        keep.add(u)
        n += size
    return [it for it in items if it.unit in keep]


def by_media(items: list[RunItem]) -> list[RunItem]:
    """`items` with those of the same `batch_key` moved up behind the first of them (otherwise in order): the
    questions about one image fill consecutive batches and share its prompt prefix."""
    groups: dict[object, list[RunItem]] = {}
    for n, it in enumerate(items):
        groups.setdefault(it.batch_key() or ("alone", n), []).append(it)
    return [it for group in groups.values() for it in group]
