"""LLaVA's generation recipe: a prompt folder in LLaVA-Instruct's layout, sent as LLaVA sent it.

Layout (the user brings the folder; Kanva ships no prompt text from elsewhere):

    DIR/system_message.txt     the system message
    DIR/000_caps.txt           a few-shot context: captions, one per line; optionally a blank line and boxes,
    DIR/000_conv.txt           one per line, `category: [x1, y1, x2, y2]` (fractions of the image, 3 decimals)
    DIR/001_caps.txt ...       and the conversation written for that context

Request: the system message, then every pair in file order as a user turn (caps) and an assistant turn
(conv), then a user turn with this image's captions, and its boxes in the same notation when the examples
have boxes. The reply is parsed in the examples' own format, found from the conv files:

- `jsonl`: one `{"question": ..., "answer": ...}` object per line;
- `blocks`: `Question:` / `Answer:` blocks separated by lines `===`;
- `text`: the whole reply is one answer (a detailed description), asked with one of Kanva's requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from kanva.data.coco import ImageRec
from kanva.data.ops.geometry import norm_box
from kanva.data.text import squash
from kanva.errors import KanvaError

_PAIR = re.compile(r"^(\d+)_(caps|conv)\.txt$")
_BOX_LINE = re.compile(r"^[^:\n]+: \[[-\d., ]+\]$", re.M)


@dataclass(frozen=True)
class PromptFolder:
    path: Path
    system: str
    shots: tuple[tuple[str, str], ...]  # (caps, conv)
    style: str  # "jsonl" | "blocks" | "text"
    boxes: bool  # the examples give boxes after the captions
    hash: str

    @property
    def id(self) -> str:
        return f"llava:{self.path.name}"

    @classmethod
    def load(cls, path: str | Path) -> PromptFolder:
        path = Path(path)
        if not path.is_dir():
            raise KanvaError(f"--prompts {path}: no such folder (LLaVA layout: system_message.txt, "
                             "NNN_caps.txt, NNN_conv.txt)")
        sys_file = path / "system_message.txt"
        if not sys_file.is_file():
            raise KanvaError(f"{sys_file}: missing (a prompt folder needs its system message)")
        files: dict[str, dict[str, Path]] = {}
        for f in sorted(path.iterdir()):
            m = _PAIR.match(f.name)
            if m:
                files.setdefault(m.group(1), {})[m.group(2)] = f
        shots = []
        for num in sorted(files, key=int):
            pair = files[num]
            for part in ("caps", "conv"):
                if part not in pair:
                    raise KanvaError(f"{path}/{num}_{part}.txt: missing (every {num}_caps.txt needs its "
                                     f"{num}_conv.txt and the other way round)")
            shots.append((pair["caps"].read_text(encoding="utf-8").strip(),
                          pair["conv"].read_text(encoding="utf-8").strip()))
        styles = {_style(conv) for _, conv in shots}
        if len(styles) > 1:
            raise KanvaError(f"{path}: the NNN_conv.txt files mix formats {sorted(styles)}; use one")
        digest = hashlib.sha256()
        for f in [sys_file] + [p for num in sorted(files, key=int) for p in (files[num]["caps"], files[num]["conv"])]:
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        return cls(path, sys_file.read_text(encoding="utf-8").strip(), tuple(shots),
                   styles.pop() if styles else "blocks", any(_BOX_LINE.search(c) for c, _ in shots),
                   digest.hexdigest()[:16])

    def context(self, rec: ImageRec) -> str:
        """The image's captions (and boxes, when the examples have them) in the examples' notation."""
        text = "\n".join(rec.captions)
        if self.boxes and rec.objects:
            text += "\n\n" + "\n".join(f"{o.category}: {list(norm_box(o.bbox, rec))}" for o in rec.objects)
        return text

    def messages(self, rec: ImageRec) -> tuple[tuple[str, str], ...]:
        msgs = [("system", self.system)]
        for caps, conv in self.shots:
            msgs += [("user", caps), ("assistant", conv)]
        return (*msgs, ("user", self.context(rec)))

    def static_text(self) -> str:
        """The folder's own words (what an echoing model would repeat)."""
        return "\n".join([self.system, *(t for shot in self.shots for t in shot)])

    def parse(self, reply: str, describe: str) -> list[tuple[str, str]] | None:
        """The reply's (question, answer) turns in the examples' format; `describe` asks for a `text` answer."""
        if self.style == "text":
            text = reply.strip()
            return [(describe, text)] if text else None
        turns = parse_jsonl(reply) if self.style == "jsonl" else parse_blocks(reply)
        return turns or None


def _style(conv: str) -> str:
    lines = [ln for ln in conv.splitlines() if ln.strip()]
    if lines and all(_json_pair(ln) is not None for ln in lines):
        return "jsonl"
    if re.search(r"^Question:\s*$", conv, re.M) and re.search(r"^===\s*$", conv, re.M):
        return "blocks"
    return "text"


def _json_pair(line: str) -> tuple[str, str] | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("question"), str) and isinstance(obj.get("answer"), str):
        return obj["question"].strip(), obj["answer"].strip()
    return None


def parse_jsonl(reply: str) -> list[tuple[str, str]]:
    """Every question/answer object line of a reply (other lines are ignored; empty texts are dropped)."""
    pairs = [_json_pair(ln.strip()) for ln in reply.splitlines() if ln.strip().startswith("{")]
    return [p for p in pairs if p is not None and p[0] and p[1]]


def parse_blocks(reply: str) -> list[tuple[str, str]]:
    """`Question:` / `Answer:` blocks separated by `===` lines, in order; a question with no answer ends it."""
    turns: list[tuple[str, str]] = []
    question = None
    for block in re.split(r"^\s*===\s*$", reply, flags=re.M):
        m = re.match(r"\s*(Question|Answer)\s*:\s*(.*)\Z", block.strip(), re.S | re.I)
        if not m:
            continue
        text = squash(m.group(2))
        if m.group(1).lower() == "question":
            question = text
        elif question and text:
            turns.append((question, text))
            question = None
    return turns
