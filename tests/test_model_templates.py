"""The saved chat template renders exactly what KanvaProcessor encodes, for every preset.

A client of the checkpoint alone (plain transformers, vLLM) sends typed content
(`[{"type": "image"}, {"type": "text", ...}]`); kanva sends a string and lets the processor put the image in
front. Both must reach the model as the same tokens, or the model is prompted unlike its training data.
Presets that need the hub are checked at the template level (no tokenizer here); the others are built and
compared token for token and answer for answer.
"""

from __future__ import annotations

import pytest
from PIL import Image

from kanva.cli import main
from kanva.model.presets import PRESETS
from kanva.model.templates import IMAGE_PLACE, get_template

QUESTION = "What is in the picture?"


def offline(name: str) -> bool:
    spec = PRESETS[name]
    return spec.vision is None and spec.lm in ("tiny", "smollm2")


def render(jinja: str, messages: list[dict], add_generation_prompt: bool = True) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    return render_jinja_template([messages], chat_template=jinja, add_generation_prompt=add_generation_prompt,
                                 bos_token="<s>", eos_token="</s>")[0][0]


def typed(*parts: str) -> list[dict]:
    """Typed content from strings; IMAGE_PLACE stands for an image part."""
    return [{"type": "image"} if p == IMAGE_PLACE else {"type": "text", "text": p} for p in parts]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_typed_content_renders_as_the_processor_writes_it(name):
    spec = PRESETS[name]
    jinja = get_template(spec.chat_template, spec.system_prompt).jinja
    # One image and a question: what `kanva chat --image --prompt` sends (the processor inserts IMAGE_PLACE).
    one = [{"role": "user", "content": typed(IMAGE_PLACE, QUESTION)}]
    assert render(jinja, one) == render(jinja, [{"role": "user", "content": IMAGE_PLACE + QUESTION}])
    assert IMAGE_PLACE + QUESTION in render(jinja, one)  # LLaVA data's form: "<image>\nWhat ..."
    # Two images, a system message and several turns.
    many = [{"role": "system", "content": typed("Be brief.")},
            {"role": "user", "content": typed(IMAGE_PLACE, IMAGE_PLACE, "Same?")},
            {"role": "assistant", "content": typed("No.")},
            {"role": "user", "content": typed("Why?")}]
    as_strings = [{"role": m["role"], "content": "".join(p.get("text", IMAGE_PLACE) for p in m["content"])}
                  for m in many]
    assert render(jinja, many) == render(jinja, as_strings)


def _square_image(size: int, seed: int) -> Image.Image:
    import numpy as np

    # Square: LLaVA's `pad` is a no-op, as in plain transformers' image processor.
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.mark.slow  # smol converts and loads SmolLM2-135M
# onevision presets: tests/test_onevision.py (LlavaOnevision classes; images, several turns, video)
@pytest.mark.parametrize("name", [n for n in sorted(PRESETS) if offline(n) and PRESETS[n].architecture == "llava"])
def test_plain_transformers_prompts_and_answers_as_kanva_chat(name, tmp_path, capsys):
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from kanva.model import KanvaProcessor, build_preset

    model_dir = build_preset(name, tmp_path / name)
    proc = KanvaProcessor.from_pretrained(model_dir)
    image = _square_image(proc.image_size[0], 5)
    image.save(tmp_path / "q.png")
    assert main(["chat", "--model", str(model_dir), "--image", str(tmp_path / "q.png"), "--prompt", QUESTION,
                 "--max-new-tokens", "16"]) == 0
    printed = capsys.readouterr().out

    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": typed(IMAGE_PLACE, QUESTION)}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    ids, _ = proc.encode_prompt([image], [{"role": "user", "content": QUESTION}])
    assert inputs["input_ids"][0].tolist() == ids
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=16)
    expected = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert expected and printed == expected + "\n"

    # Several images and turns: typed content and kanva's string form give the same ids.
    second = _square_image(proc.image_size[0], 6)
    conv = [{"role": "user", "content": typed(IMAGE_PLACE, IMAGE_PLACE, "Same?")},
            {"role": "assistant", "content": typed("No.")}, {"role": "user", "content": typed("Why?")}]
    strings = [{"role": "user", "content": "Same?"}, {"role": "assistant", "content": "No."},
               {"role": "user", "content": "Why?"}]
    typed_ids = processor(images=[image, second], text=processor.apply_chat_template(conv, add_generation_prompt=True),
                          return_tensors="pt")["input_ids"][0].tolist()
    assert typed_ids == proc.encode_prompt([image, second], strings)[0] == proc.encode_prompt([image, second], conv)[0]


def test_a_checkpoint_saved_with_an_older_rendering_loads_and_exports_with_the_current_one(tmp_path, tiny_model):
    import shutil

    from transformers import AutoProcessor

    from kanva.model import KanvaProcessor

    model_dir = shutil.copytree(tiny_model, tmp_path / "tiny")  # a copy: the test rewrites its template
    saved = (model_dir / "chat_template.jinja").read_text()
    old = saved.replace('{{ "<image>\\n" }}', "<image>")  # image parts without the newline
    assert old != saved
    (model_dir / "chat_template.jinja").write_text(old)
    image = _square_image(32, 1)
    messages = [{"role": "user", "content": typed(IMAGE_PLACE, QUESTION)}]
    proc = KanvaProcessor.from_pretrained(model_dir)
    assert proc.encode_prompt([image], messages)[0] == proc.encode_prompt([image], [{"role": "user",
                                                                                      "content": QUESTION}])[0]
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "hf")]) == 0
    exported = AutoProcessor.from_pretrained(tmp_path / "hf")
    assert IMAGE_PLACE + QUESTION in exported.apply_chat_template(messages, add_generation_prompt=True)
