"""`kanva export`: the checkpoint loads with transformers alone (a subprocess that never imports kanva) and
its greedy answer is token for token the one `kanva.infer.Generator` gives, also along lmms-eval's
`llava_hf` path (string "<image>" prompt through the tokenizer's template); a LoRA adapter is merged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from kanva.cli import main

QUESTION = "What is in the image?"
MAX_NEW = 24

# Run in a fresh interpreter: plain transformers, the way vLLM or any HF user would load the export.
HF_ONLY = r"""
import json, sys
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

image_path, question, max_new, model_dirs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
answers, llava_hf = {}, {}
for model_dir in model_dirs:
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = proc(images=Image.open(image_path).convert("RGB"), text=prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
    answers[model_dir] = proc.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    # lmms-eval's `llava_hf` model (docs/eval.md, "lmms-eval"): "<image>\n" before the prompt, the
    # tokenizer's chat template on one string message, the processor on [image] + text, greedy.
    tok = proc.tokenizer
    assert tok.chat_template is not None  # else llava_hf would fall back to its own Vicuna template
    text = tok.apply_chat_template([{"role": "user", "content": "<image>\n" + question}], tokenize=False,
                                   add_generation_prompt=True)
    inputs = proc(images=[Image.open(image_path).convert("RGB")], text=text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new, use_cache=True,
                             pad_token_id=tok.eos_token_id)
    llava_hf[model_dir] = tok.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
print(json.dumps({"answers": answers, "llava_hf": llava_hf,
                  "kanva_imported": any(m == "kanva" or m.startswith("kanva.") for m in sys.modules)}))
"""


def hf_answers(model_dirs: list[Path], image_path: Path, cwd: Path) -> dict[Path, str]:
    """Greedy answers from each exported dir, computed by the HF_ONLY script in one fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", HF_ONLY, str(image_path), QUESTION, str(MAX_NEW), *map(str, model_dirs)],
                         capture_output=True, text=True, cwd=cwd, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kanva_imported"] is False
    assert result["llava_hf"] == result["answers"]  # lmms-eval's llava_hf path gives the same answers
    return {Path(k): v for k, v in result["answers"].items()}


def kanva_answer(generator, image_path: Path) -> str:
    image = Image.open(image_path).convert("RGB")
    rows = [([image], [{"role": "user", "content": QUESTION}])]  # as `kanva chat --image --prompt` sends it
    return generator.generate(rows, max_new_tokens=MAX_NEW, temperature=0.0)[0]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "red.png"
    im = Image.new("RGB", (40, 40), (210, 40, 30))
    im.paste((20, 20, 200), (0, 0, 20, 20))
    im.save(path)
    return path


@pytest.fixture(scope="module")
def exported(tiny_dir, image_path, tmp_path_factory):
    """The tiny model exported as is and through a LoRA adapter; the reference answers; the HF answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration

    from kanva.infer import Generator
    from kanva.model import KanvaProcessor

    tmp = tmp_path_factory.mktemp("exported")
    plain = tmp / "hf"
    assert main(["export", "--model", str(tiny_dir), "--out", str(plain)]) == 0

    # An adapter-only directory (what peft's save_pretrained writes), pointing at the base model.
    torch.manual_seed(0)
    base = LlavaForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|v_proj|down_proj)",
                        init_lora_weights=False)  # random B too: the adapter changes the answer
    peft_model = get_peft_model(base, config)
    adapter = tmp / "adapter"
    peft_model.save_pretrained(adapter)
    assert not (adapter / "config.json").exists()
    lora = tmp / "hf-lora"
    assert main(["export", "--model", str(adapter), "--out", str(lora)]) == 0

    merged = Generator(peft_model.merge_and_unload().eval(), KanvaProcessor.from_pretrained(tiny_dir))
    reference = {plain: kanva_answer(Generator.load(tiny_dir), image_path), lora: kanva_answer(merged, image_path)}
    return plain, lora, reference, hf_answers([plain, lora], image_path, tmp)


@pytest.mark.slow  # a fresh interpreter importing torch + transformers
def test_export_matches_generator(exported):
    plain, _, reference, hf = exported
    files = {p.name for p in plain.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "processor_config.json",
            "tokenizer.json", "chat_template.jinja"} <= files
    assert json.loads((plain / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]
    assert reference[plain]  # a non-empty answer, so the comparison means something
    assert hf[plain] == reference[plain]


@pytest.mark.slow
def test_export_merges_lora(exported):
    plain, lora, reference, hf = exported
    assert json.loads((lora / "kanva.json").read_text())["export"]["lora_merged"] is True
    assert reference[lora] != reference[plain]  # the adapter matters
    assert hf[lora] == reference[lora]


def test_export_refuses_bad_dirs(tiny_dir, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert main(["export", "--model", str(tiny_dir), "--out", str(tmp_path / "full")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    assert main(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such model directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
