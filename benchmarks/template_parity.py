"""Does a client of the checkpoint alone prompt and answer as `kanva chat` does? One row per preset.

For every preset that builds offline: build it, ask `kanva chat --image IMG --prompt Q` (greedy), then load the
checkpoint with plain transformers (AutoProcessor + AutoModelForImageTextToText), send typed chat content
`[{"type": "image"}, {"type": "text", "text": Q}]` through the saved chat template, and compare the prompt
ids with `KanvaProcessor.encode_prompt` and the greedy answers. Hub-only presets: the template renders typed
content exactly as kanva's string form (tests/test_model_templates.py checks it; printed here too).

    python benchmarks/template_parity.py                      # tiny, smol, tiny-ov, smol-ov (+ hub presets' templates)
    python benchmarks/template_parity.py --presets tiny-ov --size 2    # a 2x-resolution image (AnyRes crops)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kanva.cli import main as kanva
from kanva.model import KanvaProcessor, build_preset
from kanva.model.presets import PRESETS
from kanva.model.templates import IMAGE_PLACE, get_template

QUESTION = "What is in the picture?"


def offline(name: str) -> bool:
    spec = PRESETS[name]
    return spec.vision is None and spec.lm in ("tiny", "smollm2")


def check_built(name: str, work: Path, size: int, max_new: int) -> dict:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model_dir = work / name
    if not (model_dir / "config.json").is_file():
        build_preset(name, model_dir)
    proc = KanvaProcessor.from_pretrained(model_dir)
    side = proc.image_size[0] * size
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (side, side, 3), dtype=np.uint8))
    image.save(work / "q.png")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert kanva(["chat", "--model", str(model_dir), "--image", str(work / "q.png"), "--prompt", QUESTION,
                      "--max-new-tokens", str(max_new)]) == 0
    chat_answer = out.getvalue().rstrip("\n")

    from transformers.utils import is_torchvision_available

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    loaded_with = "AutoProcessor"
    if PRESETS[name].architecture == "onevision" and not is_torchvision_available():
        # transformers' OneVision video processor needs torchvision; the same processor with its PIL parts
        from kanva.model.onevision import load_processor

        processor, loaded_with = load_processor(model_dir), "LlavaOnevisionProcessor (PIL parts)"
    else:
        processor = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    ids, _ = proc.encode_prompt([image], [{"role": "user", "content": QUESTION}])
    with torch.inference_mode():
        gen = model.generate(**inputs, do_sample=False, max_new_tokens=max_new)
    hf_answer = processor.batch_decode(gen[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    return {"preset": name, "model": f"{type(model).__name__} + {loaded_with}", "image": f"{side}x{side}",
            "prompt_tokens": len(ids), "same_tokens": inputs["input_ids"][0].tolist() == ids,
            "same_answer": hf_answer == chat_answer, "answer": chat_answer}


def check_template(name: str) -> dict:
    from transformers.utils.chat_template_utils import render_jinja_template

    spec = PRESETS[name]
    jinja = get_template(spec.chat_template, spec.system_prompt).jinja

    def render(content) -> str:
        return render_jinja_template([[{"role": "user", "content": content}]], chat_template=jinja,
                                     add_generation_prompt=True, bos_token="<s>", eos_token="</s>")[0][0]

    same = render([{"type": "image"}, {"type": "text", "text": QUESTION}]) == render(IMAGE_PLACE + QUESTION)
    return {"preset": name, "model": "(hub only: template)", "image": "", "prompt_tokens": "",
            "same_tokens": same, "same_answer": "", "answer": ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=sorted(PRESETS))
    ap.add_argument("--size", type=int, default=1, help="image side in multiples of the model's input size")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("KANVA_BENCH_DIR", tempfile.gettempdir()))
                    / "kanva-template-parity")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = [check_built(n, args.work, args.size, args.max_new_tokens) if offline(n) else check_template(n)
            for n in args.presets]
    print("| preset | loaded as | image | prompt tokens | tokens = encode_prompt (hub: rendering) | answer = kanva chat | answer |")
    print("|---|---|---|---:|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['model']} | {r['image']} | {r['prompt_tokens']} | {r['same_tokens']} | "
              f"{r['same_answer']} | {r['answer']!r} |")


if __name__ == "__main__":
    main()
