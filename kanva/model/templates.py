"""Chat templates (Jinja, saved with the tokenizer) and the end-of-turn marker each one uses.

A template must be prefix-stable: rendering messages[:k] with the generation prompt is a prefix of
rendering messages[:k+1]. The processor relies on that to find each assistant turn's characters (and so
its tokens) per message, instead of counting separator lengths. Message content may be a string
(with `<image>` where an image goes) or a list of parts in transformers' multimodal form
(`{"type": "image"}` renders as `<image>` and a newline, `{"type": "video"}` as `<video>` and a newline,
`{"type": "text", "text": ...}` as its text), so
`AutoProcessor.apply_chat_template` works on a saved model without kanva.

An image part renders as IMAGE_PLACE (`<image>\n`) because that is how LLaVA data puts an image in front
of the question (`"<image>\nWhat is ..."`), so training, `kanva chat` / `kanva serve` (which insert
IMAGE_PLACE) and any client of the saved template -- plain transformers, vLLM -- give the model the same
tokens for the same typed content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kanva.data.llava import IMAGE_TOKEN, VIDEO_TOKEN
from kanva.errors import KanvaError

# How one image sits in a prompt: its token on a line of its own, before the text that follows.
IMAGE_PLACE = IMAGE_TOKEN + "\n"
VIDEO_PLACE = VIDEO_TOKEN + "\n"  # a video likewise (LLaVA-OneVision data: "<video>\nWhat happens ...")


def _literal(text: str) -> str:
    # A JSON string is a valid Jinja string literal (same escapes), so any system prompt is safe to embed.
    return json.dumps(text)


# Renders one message's content, string (as is) or list of parts (an image part as IMAGE_PLACE).
_CONTENT = (
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ " + _literal(IMAGE_PLACE) + " }}"
    "{%- elif part['type'] == 'video' -%}{{ " + _literal(VIDEO_PLACE) + " }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
)


@dataclass(frozen=True)
class Template:
    """A chat template: Jinja source, its name, and the string that closes an assistant turn."""

    name: str
    jinja: str
    end_of_turn: str
    system_prompt: str | None


def chatml(system_prompt: str | None = None) -> Template:
    """ChatML (`<|im_start|>role\\n...<|im_end|>\\n`), as SmolLM2 and the tiny tokenizer use.

    A `system_prompt` is rendered when the messages bring no system message of their own. Unlike SmolLM2's
    stock template, which injects a ~20-token default system prompt into every sample, the default here is
    whatever the preset sets (short, or none): LM tokens are the CPU budget.
    """
    system = ""
    if system_prompt:
        system = (
            "{%- if messages[0]['role'] != 'system' -%}"
            "{{ '<|im_start|>system\\n' + " + _literal(system_prompt) + " + '<|im_end|>\\n' }}"
            "{%- endif -%}"
        )
    jinja = (
        system
        + "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}" + _CONTENT + "{{ '<|im_end|>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
    )
    return Template("chatml", jinja, "<|im_end|>", system_prompt)


# Vicuna v1.1's documented prompt format: a system line, then "USER: q ASSISTANT: a</s>" turns.
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def vicuna_v1(system_prompt: str | None = None) -> Template:
    """Vicuna v1 style, as LLaVA-1.5 trains Vicuna-7B: `<s>SYSTEM USER: q ASSISTANT: a</s>USER: ...`."""
    system = ""
    if system_prompt:
        system = (
            "{%- if messages[0]['role'] != 'system' -%}{{ " + _literal(system_prompt) + " + ' ' }}{%- endif -%}"
        )
    jinja = (
        "{{ bos_token }}" + system + "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}" + _CONTENT + "{{ ' ' }}"
        "{%- elif message['role'] == 'user' -%}{{ 'USER: ' }}" + _CONTENT + "{{ ' ' }}"
        "{%- else -%}{{ 'ASSISTANT: ' }}" + _CONTENT + "{{ eos_token }}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
    )
    return Template("vicuna_v1", jinja, "</s>", system_prompt)


TEMPLATES = {"chatml": chatml, "vicuna_v1": vicuna_v1}


def get_template(name: str, system_prompt: str | None = None) -> Template:
    """Template `name` rendering `system_prompt` (None: no system line) when messages bring none."""
    if name not in TEMPLATES:
        raise KanvaError(f"unknown chat template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name](system_prompt)


def recorded_template(record: dict) -> Template | None:
    """The template a model's kanva.json names, as this version renders it (None: no record).

    A checkpoint saved before a rendering fix keeps the old Jinja; loading through this keeps every model on
    the one rendering that matches its training data (string content renders the same in every version)."""
    t = record.get("template") or {}
    return get_template(t["name"], t.get("system_prompt")) if t.get("name") in TEMPLATES else None
