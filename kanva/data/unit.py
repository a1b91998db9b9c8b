"""The question-answer unit: what evolution draws an operator for, what elimination judges, what the output holds.

A unit is one human question and its answer about one image, with the structure rules need to check it: the
answer format (open, short, yes/no, multiple choice with options), the categories it is about (`objects`), the
categories it names on purpose as absent (`absent`: existence "no" questions, false premises, MC distractors),
the slot values a paraphrase must keep, and the knowledge facts it used. LLaVA turns are made from it with
the fixed answer-format suffixes, and seed LLaVA samples are parsed back into units.

A unit may also be about a multi-image set or a clip (`media`): "images" units hold the set's image paths in
`image` (a list; the human turn gives each one a line "Image k: <image>", so questions can say "image 2"),
"video" units the video path (`<video>` in the human turn). Single-image units have `media` None and read and
write exactly as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN

SHORT_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
LETTERS = ("A", "B", "C", "D")
# How a multiple-choice answer is written in the gpt turn (EvolveConfig.mc_answer): "letter" is the letter alone
# ("B"), as LLaVA-1.5's data writes it; "option" is the chosen option's text, then its letter in parentheses
# ("blue (B)"), so the model names what it sees before it points at a letter. Either form is read back as the
# letter (`mc_letter`), and MMBench's judge-free extraction reads both.
MC_ANSWERS = ("letter", "option")
FORMATS = ("open", "short", "yesno", "mc")

_OPTION = re.compile(r"^([A-Z])\. (.+)$")
_OPTION_ANSWER = re.compile(r"^(.+) \(([A-Z])\)$")
_IMAGE_LABEL = re.compile(rf"^Image \d+: {re.escape(IMAGE_TOKEN)}\n", re.M)
MEDIA = ("images", "video")  # the kinds of multi-media units; None: one image


def media_prefix(image: str | list[str], media: str | None = None) -> str:
    """What goes before the first question: `<image>` for one image, a labelled line per image of a set, or
    `<video>`."""
    if media == "video":
        return f"{VIDEO_TOKEN}\n"
    if media == "images":
        return "".join(f"Image {k + 1}: {IMAGE_TOKEN}\n" for k in range(len(image)))
    return f"{IMAGE_TOKEN}\n"


def media_sample(sample_id: str, image: str | list[str], media: str | None, conv: list[dict]) -> dict:
    """A LLaVA sample with its media field: `image` (a path or a list) or `video`."""
    return {"id": sample_id, "video" if media == "video" else "image": image, "conversations": conv}


@dataclass(slots=True)
class Unit:
    """One question-answer unit (see module docstring). `question` has no suffix, options or image token."""

    id: str
    image: str | list[str]  # the image path(s) or video path as the LLaVA sample has it (copied to children)
    image_id: int
    question: str
    answer: str
    fmt: str = "open"
    options: list[str] = field(default_factory=list)
    lineage: str = ""  # the seed unit this one descends from
    parent: str | None = None
    round: int = 0
    operator: str = "seed"
    template: str = "seed"
    objects: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    facts: list[list[str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    prompt_hash: str | None = None
    media: str | None = None  # None (one image), "images" (a set) or "video" (a clip)

    def human(self) -> str:
        """The human turn text (without the image token): question, options, format suffix."""
        if self.fmt == "mc":
            opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(self.options))
            return f"{self.question}\n{opts}\n{MC_SUFFIX}"
        if self.fmt in ("short", "yesno"):
            return f"{self.question}\n{SHORT_SUFFIX}"
        return self.question

    def text(self) -> str:
        """Question, options and answer in one string (for dedup, Jaccard and the report)."""
        opts = " ".join(self.options)
        return f"{self.question} {opts} {self.answer}" if opts else f"{self.question} {self.answer}"

    def reply(self, mc_answer: str = "letter") -> str:
        """The gpt turn text: the answer, or for multiple choice the form `mc_answer` names (MC_ANSWERS)."""
        if self.fmt == "mc" and mc_answer == "option":
            return f"{self.options[LETTERS.index(self.answer)]} ({self.answer})"
        return self.answer

    def to_sample(self, mc_answer: str = "letter") -> dict:
        """A one-turn LLaVA sample."""
        return media_sample(self.id, self.image, self.media, [
            {"from": "human", "value": f"{media_prefix(self.image, self.media)}{self.human()}"},
            {"from": "gpt", "value": self.reply(mc_answer)},
        ])

    def to_dict(self) -> dict:
        # By hand: dataclasses.asdict deep-copies every value, which dominated the rule-only run time.
        image = list(self.image) if self.media == "images" else self.image
        d = {
            "id": self.id, "image": image, "image_id": self.image_id, "question": self.question,
            "answer": self.answer, "fmt": self.fmt, "options": list(self.options), "lineage": self.lineage,
            "parent": self.parent, "round": self.round, "operator": self.operator, "template": self.template,
            "objects": list(self.objects), "absent": list(self.absent), "slots": dict(self.slots),
            "facts": [list(f) for f in self.facts], "params": dict(self.params), "model": self.model,
            "prompt_hash": self.prompt_hash,
        }
        if self.media is not None:  # single-image units keep their record as it was
            d["media"] = self.media
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Unit:
        return cls(**d)


def turns(units: list[Unit], sample_id: str, mc_answer: str = "letter") -> dict:
    """A multi-turn LLaVA sample from units of the same image (the image tokens go in the first turn)."""
    conv = []
    first = units[0]
    for i, u in enumerate(units):
        q = f"{media_prefix(first.image, first.media)}{u.human()}" if i == 0 else u.human()
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": u.reply(mc_answer)}]
    return media_sample(sample_id, first.image, first.media, conv)


def mc_letter(answer: str, options: list[str]) -> str:
    """The letter of a multiple-choice answer in either form of MC_ANSWERS ("B" or "blue (B)"); any other
    answer is returned as it is."""
    m = _OPTION_ANSWER.match(answer.strip())
    if m and m.group(2) in LETTERS[: len(options)] and options[LETTERS.index(m.group(2))] == m.group(1).strip():
        return m.group(2)
    return answer


def parse_human(text: str, answer: str) -> tuple[str, str, list[str]]:
    """(question, fmt, options) from a human turn; the inverse of `Unit.human` for texts it made."""
    if text.count(IMAGE_TOKEN) > 1:  # a set's labelled image lines ("Image 2: <image>")
        text = _IMAGE_LABEL.sub("", text)
    text = text.replace(IMAGE_TOKEN, "").replace(VIDEO_TOKEN, "").strip()
    if text.endswith(MC_SUFFIX):
        lines = text[: -len(MC_SUFFIX)].rstrip().split("\n")
        options: list[str] = []
        while lines and (m := _OPTION.match(lines[-1].strip())):
            options.insert(0, m.group(2).strip())
            lines.pop()
        stem = "\n".join(lines).strip()
        if len(options) >= 2 and stem:
            return stem, "mc", options
        return text, "open", []
    if text.endswith(SHORT_SUFFIX):
        q = text[: -len(SHORT_SUFFIX)].strip()
        fmt = "yesno" if answer.strip().lower().rstrip(".") in ("yes", "no") else "short"
        return q, fmt, []
    return text, "open", []
