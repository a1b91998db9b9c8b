"""Prompt styles for `kanva eval run`, and the inverse: recovering the question from a prompt.

Two styles, recorded in every results JSON:
- `llava` (default): LLaVA-1.5's evaluation prompts. Yes/no and short-answer benchmarks end in
  SHORT_ANSWER on a new line; multiple choice lists the options as "A. ..." lines and ends in CHOICE.
- `lmms-eval`: the lmms-eval task prompts. Identical for MME, POPE, ScienceQA and LLaVA-Bench; for
  MMBench the hint, question and an "options" block are joined by spaces on one line.

Answer files carry the prompt as run; scorers match it back to the ground-truth question with
`normalize_question`, which strips the image token and any known instruction suffix, so the same
scorer reads answers produced under either style (or MME's own " Please answer yes or no.").
"""

from __future__ import annotations

import re

from kanva.data.llava import IMAGE_TOKEN

PROMPT_STYLES = ("llava", "lmms-eval")

SHORT_ANSWER = "Answer the question using a single word or phrase."
CHOICE = "Answer with the option's letter from the given choices directly."
MME_YES_NO = "Please answer yes or no."  # the suffix of MME's own questions

# Instruction suffixes a prompt may carry after the question (longest first is not needed: each is a
# full sentence and they are stripped repeatedly).
KNOWN_SUFFIXES = (SHORT_ANSWER, CHOICE, MME_YES_NO)

_IMAGE_TOKEN = re.compile(re.escape(IMAGE_TOKEN))


def normalize_question(text: str) -> str:
    """The question without image token, surrounding whitespace or trailing instruction suffixes."""
    s = _IMAGE_TOKEN.sub("", text).strip()
    changed = True
    while changed:
        changed = False
        for suffix in KNOWN_SUFFIXES:
            if s.endswith(suffix):
                s = s[: -len(suffix)].rstrip()
                changed = True
    return s


def check_style(style: str) -> str:
    from kanva.errors import KanvaError

    if style not in PROMPT_STYLES:
        raise KanvaError(f"unknown prompt style {style!r} (choose from {', '.join(PROMPT_STYLES)})")
    return style


def short_answer_prompt(question: str, style: str) -> str:
    """MME and POPE: the question without MME's yes/no suffix, then SHORT_ANSWER on its own line.

    Both styles agree here (lmms-eval adopted LLaVA-1.5's wording for these tasks).
    """
    check_style(style)
    return f"{normalize_question(question)}\n{SHORT_ANSWER}"


def choice_prompt(question: str, options: dict[str, str], hint: str | None, style: str, context_label: bool) -> str:
    """Multiple choice. `options` maps letters to texts in order; `hint` may be None.

    llava: [hint or "Context: hint" line] question, "A. x" lines, CHOICE line.
    lmms-eval, MMBench (`context_label=False`): "hint question There are several options:" then the
    "A. x" lines, then CHOICE on its own line; ScienceQA (`context_label=True`) is as llava.
    """
    check_style(style)
    lines = [f"{k}. {v}" for k, v in options.items()]
    if style == "lmms-eval" and not context_label:
        block = "There are several options:\n" + "\n".join(lines)
        head = f"{hint} {question}" if hint else question
        return f"{head} {block}\n{CHOICE}"
    parts = []
    if hint:
        parts.append(f"Context: {hint}" if context_label else hint)
    parts.append(question)
    parts.extend(lines)
    parts.append(CHOICE)
    return "\n".join(parts)
