"""The LLaVA-format data contract: load (JSON or JSONL), validate, save.

A sample is
    {"id": str, "image": str | [str, ...] (optional), "video": str (optional),
     "conversations": [{"from": "human"|"gpt", "value": str}, ...]}
Rules checked here (structure only; images and token budgets are checked by the processor):
- `id` is a non-empty string (or int, as some public LLaVA files have), unique within the file;
- `conversations` alternate human/gpt, start with human and end with gpt (every question has its answer);
- no turn is empty or whitespace-only;
- `<image>` appears in human turns only (any of them: LLaVA-OneVision interleaves images with the dialogue),
  exactly once per image, in the order of `image` (none in text-only samples);
- `video` (a video file or a folder of frames) has exactly one `<video>`, in a human turn.

Every violation is a `SampleError` with a `reason` code and a message naming file and sample id, so a
`--skip-invalid` run can count what it skipped per reason instead of dropping samples silently.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"

# Reason codes of SampleError. The first group is structural (this module), the second is raised by
# kanva.model.processor when a sample meets the model (images, token budget).
REASONS = (
    "json",  # file or JSONL line is not valid JSON
    "schema",  # missing/mistyped field (id, image, conversations, from, value)
    "duplicate_id",  # two samples share an id in one file
    "roles",  # roles not human/gpt alternating from human to gpt
    "empty_turn",  # a turn with no text
    "image_tokens",  # <image> count or placement does not match the images
    "too_long",  # truncation to max_length would cut an image or leave nothing supervised
    "missing_image",  # image file does not exist
    "corrupt_image",  # image file cannot be decoded (truncated, not an image)
    "video_tokens",  # <video> count does not match the video, or the model takes no video
    "missing_video",  # video file or frame folder does not exist
    "video_unreadable",  # video cannot be decoded (not a video, no frames, over the decoding bound)
)


class SampleError(KanvaError):
    """A bad sample. `.reason` is one of REASONS; the message names file and sample id."""

    def __init__(self, reason: str, message: str, *, source: str | None = None, sample_id: str | None = None):
        assert reason in REASONS, reason
        where = ", ".join(p for p in (source, f"sample {sample_id!r}" if sample_id is not None else None) if p)
        super().__init__(f"{where}: {message} [{reason}]" if where else f"{message} [{reason}]")
        self.reason = reason
        self.source = source
        self.sample_id = sample_id


def sample_images(sample: dict) -> list[str]:
    """The image paths of a (validated) sample, as a list (empty for text-only samples)."""
    image = sample.get("image")
    if image is None:
        return []
    return [image] if isinstance(image, str) else list(image)


def validate_sample(sample: Any, source: str | None = None, index: int | None = None) -> None:
    """Raise SampleError if `sample` breaks the contract. `index` names samples that have no usable id."""

    def fail(reason: str, message: str, sid: str | None) -> SampleError:
        return SampleError(reason, message, source=source, sample_id=sid)

    fallback = f"#{index}" if index is not None else None
    if not isinstance(sample, dict):
        raise fail("schema", f"a sample must be an object, got {type(sample).__name__}", fallback)
    sid = sample.get("id")
    if isinstance(sid, bool) or not isinstance(sid, (str, int)) or (isinstance(sid, str) and not sid.strip()):
        raise fail("schema", f"field 'id' must be a non-empty string, got {sid!r}", fallback)
    sid = str(sid)
    # Extra fields are kept untouched (public LLaVA files carry some); only the known ones are typed.
    image = sample.get("image")
    if image is not None:
        if isinstance(image, str):
            images = [image]
        elif isinstance(image, list) and image:
            images = image
        else:
            raise fail("schema", f"field 'image' must be a path or a non-empty list of paths, got {image!r}", sid)
        for im in images:
            if not isinstance(im, str) or not im.strip():
                raise fail("schema", f"field 'image' has an invalid path {im!r}", sid)
    else:
        images = []

    conv = sample.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise fail("schema", "field 'conversations' must be a non-empty list", sid)
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
            raise fail("schema", f"conversations[{i}] must be {{'from': str, 'value': str}}, got {turn!r}", sid)
        expected = "human" if i % 2 == 0 else "gpt"
        if turn["from"] != expected:
            what = "starts" if i == 0 else "continues"
            raise fail("roles", f"conversations[{i}] is from {turn['from']!r}; a conversation {what} with "
                       f"{expected!r} (human and gpt alternate, human first)", sid)
        if not turn["value"].strip():
            raise fail("empty_turn", f"conversations[{i}] ({turn['from']}) is empty", sid)
    if conv[-1]["from"] != "gpt":
        raise fail("roles", f"conversations[{len(conv) - 1}] is an unanswered human turn; the last turn must be gpt", sid)

    video = sample.get("video")
    if video is not None and (not isinstance(video, str) or not video.strip()):
        raise fail("schema", f"field 'video' must be a path (file or folder of frames), got {video!r}", sid)
    for token, n, reason, what in ((IMAGE_TOKEN, len(images), "image_tokens", "image"),
                                   (VIDEO_TOKEN, int(video is not None), "video_tokens", "video")):
        counts = [turn["value"].count(token) for turn in conv]
        in_gpt = [i for i, c in enumerate(counts) if c and i % 2 == 1]
        if in_gpt:
            raise fail(reason, f"conversations[{in_gpt[0]}] (gpt) contains {token}; it may only appear in human "
                       "turns", sid)
        if sum(counts) != n:
            raise fail(reason, f"the human turns have {sum(counts)} {token} but the sample has {n} {what}(s); "
                       f"there must be exactly one {token} per {what}", sid)


def _parse(path: Path) -> list[tuple[Any, str]]:
    """Parse a JSON array or a JSONL file into (record, where) pairs; a syntax error names file, line, column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KanvaError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise SampleError("json", f"not UTF-8 text ({e})", source=str(path)) from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((json.loads(line), f"{path}:{lineno}"))
            except json.JSONDecodeError as e:
                records.append((SampleError("json", f"invalid JSON at line {lineno}, column {e.colno}: {e.msg}",
                                            source=str(path)), f"{path}:{lineno}"))
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SampleError("json", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                          source=str(path)) from None
    if not isinstance(data, list):
        raise SampleError("schema", f"expected a JSON array of samples, got {type(data).__name__}", source=str(path))
    return [(rec, str(path)) for rec in data]


def load_llava_checked(path: str | Path, skip_invalid: bool = False) -> tuple[list[dict], Counter]:
    """Load and validate a LLaVA JSON/JSONL file.

    Returns (kept samples, Counter of skip reasons). Without `skip_invalid` the first bad sample raises
    SampleError; with it, bad samples are left out and counted per reason (an unreadable JSON array
    still raises: there are no samples to keep).
    """
    path = Path(path)
    skipped: Counter = Counter()
    kept: list[dict] = []
    seen: set[str] = set()
    for index, (rec, where) in enumerate(_parse(path)):
        try:
            if isinstance(rec, SampleError):
                raise rec
            validate_sample(rec, source=where, index=index)
            sid = str(rec["id"])
            if sid in seen:
                raise SampleError("duplicate_id", "this id is used by an earlier sample", source=where, sample_id=sid)
            seen.add(sid)
            kept.append(rec)
        except SampleError as e:
            if not skip_invalid:
                raise
            skipped[e.reason] += 1
    return kept, skipped


def load_llava(path: str | Path) -> list[dict]:
    """Load a LLaVA JSON/JSONL file; any invalid sample raises SampleError naming file and id."""
    return load_llava_checked(path)[0]


def dumps_llava(samples: list[dict]) -> str:
    """Deterministic JSON text for `samples` (key order as given, UTF-8, two-space indent)."""
    return json.dumps(samples, ensure_ascii=False, indent=2) + "\n"


def save_llava(samples: list[dict], path: str | Path, source: str | None = None) -> Path:
    """Validate and write samples as JSON (or JSONL for a .jsonl path) atomically; same input -> same bytes."""
    path = Path(path)
    seen: set[str] = set()
    for i, s in enumerate(samples):
        validate_sample(s, source=source or str(path), index=i)
        if str(s["id"]) in seen:
            raise SampleError("duplicate_id", "this id is used by an earlier sample", source=source or str(path),
                              sample_id=str(s["id"]))
        seen.add(str(s["id"]))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        text = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    else:
        text = dumps_llava(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file in the same folder and rename: a crash never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def format_skips(skipped: Counter) -> str:
    """One line per reason, for the end of a `--skip-invalid` run."""
    if not skipped:
        return "skipped 0 invalid samples"
    lines = [f"skipped {sum(skipped.values())} invalid samples:"]
    lines += [f"  {reason}: {n}" for reason, n in sorted(skipped.items())]
    return "\n".join(lines)
