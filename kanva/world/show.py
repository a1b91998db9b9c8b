"""A contact sheet of a world split for humans: images with their boxes, labels, printed words and a caption."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from kanva.data.coco import load_coco
from kanva.errors import KanvaError
from kanva.world.glyphs import sign_font_path

CELL = 336  # pixels per image in the sheet: big enough to read labels drawn at a 224 px image's scale


def _box_color(category_id: int) -> tuple[int, int, int]:
    """A fixed, saturated colour per category (golden-ratio hue steps), so a category looks the same everywhere."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((category_id * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def show_world(world: str | Path, out: str | Path, split: str = "test", n: int = 16) -> Path:
    """Draw the first `n` images of `split` with boxes, labels and their first caption into `out` (PNG)."""
    from PIL import Image, ImageDraw, ImageFont

    world = Path(world)
    if n < 1:
        raise KanvaError(f"--n: must be >= 1, got {n}")
    coco = load_coco(world, split)
    ids = coco.category_ids
    images = list(coco.images.values())[:n]
    if not images:
        raise KanvaError(f"{world / 'annotations' / f'instances_{split}.json'}: no images")

    font = ImageFont.truetype(str(sign_font_path()), 13)
    cap_font = ImageFont.truetype(str(sign_font_path().with_name("DejaVuSans.ttf")), 13)
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cap_h = 56
    sheet = Image.new("RGB", (cols * (CELL + 8) + 8, rows * (CELL + cap_h + 8) + 8), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for k, img in enumerate(images):
        path = world / split / img.file_name
        if not path.is_file():
            raise KanvaError(f"{path}: image {img.id} of the {split!r} annotations is missing")
        x0 = 8 + (k % cols) * (CELL + 8)
        y0 = 8 + (k // cols) * (CELL + cap_h + 8)
        scale = CELL / max(img.width, img.height)
        with Image.open(path) as im:
            sheet.paste(im.convert("RGB").resize((round(im.width * scale), round(im.height * scale))), (x0, y0))
        for t in img.texts:
            x, y, w, h = (v * scale for v in t.bbox)
            draw.rectangle([x0 + x, y0 + y, x0 + x + w, y0 + y + h], outline=(255, 255, 255), width=1)
        for o in img.objects:
            x, y, w, h = (v * scale for v in o.bbox)
            col = _box_color(ids[o.category])
            draw.rectangle([x0 + x, y0 + y, x0 + x + w, y0 + y + h], outline=col, width=2)
            label = o.category + (f" ({o.color})" if o.color else "")
            tx, ty = x0 + x, max(y0, y0 + y - 15)
            bbox = draw.textbbox((tx, ty), label, font=font)
            draw.rectangle([bbox[0] - 1, bbox[1] - 1, bbox[2] + 1, bbox[3] + 1], fill=col)
            draw.text((tx, ty), label, fill=(0, 0, 0), font=font)
        head = f"[{img.scene}] " + (img.captions[0] if img.captions else "")
        for i, line in enumerate(textwrap.wrap(head, width=46)[:3]):
            draw.text((x0, y0 + CELL + 2 + 17 * i), line, fill=(20, 20, 20), font=cap_font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
