"""Model assembly: presets, parts from local checkpoints, truncation, projectors, plain-transformers loading."""

import json

import pytest
import torch

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.model import build_model, build_preset, load_model, resolve_preset
from kanva.model.presets import PRESETS, ModelSpec

TINY_LM = PRESETS["tiny"].lm_config


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model


def test_tiny_is_a_plain_transformers_checkpoint(tiny):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(tiny)
    proc = AutoProcessor.from_pretrained(tiny)
    cfg = model.config
    assert proc.tokenizer.convert_tokens_to_ids("<image>") == cfg.image_token_index
    assert cfg.image_seq_length == 16  # 32 px / patch 8 -> 4x4, SigLIP keeps all tokens
    assert cfg.vision_feature_select_strategy == "full" and proc.vision_feature_select_strategy == "full"
    assert cfg.text_config.vocab_size == len(proc.tokenizer)  # embeddings resized for <image>
    assert len(proc.tokenizer) < 1100  # the small offline BPE, not a real vocabulary
    record = json.loads((tiny / "kanva.json").read_text())
    assert record["preset"] == "tiny" and record["image_aspect_ratio"] == "pad"
    assert record["template"]["end_of_turn"] == "<|im_end|>"
    # The prompt the saved processor renders expands <image> to exactly the model's feature count.
    prompt = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
                                      add_generation_prompt=True)
    from PIL import Image

    inputs = proc(images=Image.new("RGB", (32, 32)), text=prompt, return_tensors="pt")
    assert int((inputs["input_ids"] == cfg.image_token_index).sum()) == 16
    out = model(**inputs)
    assert out.logits.shape[-1] == cfg.text_config.vocab_size


def test_build_is_deterministic_per_seed(tmp_path, tiny):
    from safetensors.torch import load_file

    again = build_preset("tiny", tmp_path / "again")
    other = build_preset("tiny", tmp_path / "other", seed=1)
    a, b, c = (load_file(d / "model.safetensors") for d in (tiny, again, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert (tiny / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep")
    with pytest.raises(KanvaError, match="--force"):
        build_preset("tiny", tmp_path / "x")
    assert (tmp_path / "x" / "file").read_text() == "keep"


def _clip_dir(tmp_path, layers=3):
    """A small random CLIP vision checkpoint with its image processor, as a local dir."""
    from transformers import CLIPVisionConfig, CLIPVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                           image_size=30, patch_size=10)
    path = tmp_path / "clip"
    CLIPVisionModel(cfg).save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}).save_pretrained(path)
    return path


def _features(model_dir, pixels):
    model, _ = load_model(model_dir)
    with torch.no_grad():
        return model.model.get_image_features(pixel_values=pixels).pooler_output[0]


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_truncated_encoder_gives_the_same_features(tmp_path, family):
    if family == "clip":
        spec = dict(vision=str(_clip_dir(tmp_path)))
    else:
        spec = dict(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                       num_attention_heads=2, image_size=32, patch_size=8))
    common = dict(lm="tiny", lm_config=TINY_LM, vision_feature_layer=-2, **spec)
    full = build_model(ModelSpec(truncate_vision=False, **common), tmp_path / "full")
    cut = build_model(ModelSpec(truncate_vision=True, **common), tmp_path / "cut")
    m_full, p_full = load_model(full)
    m_cut, p_cut = load_model(cut)
    assert m_full.config.vision_config.num_hidden_layers == 3 and m_full.config.vision_feature_layer == -2
    assert m_cut.config.vision_config.num_hidden_layers == 2 and m_cut.config.vision_feature_layer == -1
    assert len(m_cut.model.vision_tower.encoder.layers) == 2
    size = 30 if family == "clip" else 32
    # CLIP: 3x3 patches + CLS, "default" drops CLS -> 9; SigLIP "full" keeps all 16.
    assert p_cut.num_image_tokens == p_full.num_image_tokens == (9 if family == "clip" else 16)
    assert m_cut.config.vision_feature_select_strategy == ("default" if family == "clip" else "full")
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    a, b = _features(full, pixels), _features(cut, pixels)
    assert a.shape == (p_cut.num_image_tokens, 64)
    assert torch.allclose(a, b, atol=1e-5)


def test_linear_projector_is_an_affine_map(tmp_path):
    spec = resolve_preset("tiny", {"projector": "linear"})
    m, _ = load_model(build_model(spec, tmp_path / "lin"))
    proj = m.model.multi_modal_projector
    assert m.config.projector_hidden_act == "linear"
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 32, generator=g), torch.randn(5, 32, generator=g)
    zero = proj(torch.zeros(1, 32))
    with torch.no_grad():  # f(x + y) - f(0) == (f(x) - f(0)) + (f(y) - f(0)) only for an affine f
        assert torch.allclose(proj(x + y) - zero, (proj(x) - zero) + (proj(y) - zero), atol=1e-5)
        mlp, _ = load_model(build_preset("tiny", tmp_path / "mlp"))
        p2 = mlp.model.multi_modal_projector
        assert not torch.allclose(p2(x + y) - p2(torch.zeros(1, 32)),
                                  p2(x) + p2(y) - 2 * p2(torch.zeros(1, 32)), atol=1e-3)


def test_overrides_are_typed_and_strict():
    spec = resolve_preset("smol", {"vision_config.num_hidden_layers": 6, "system_prompt": None})
    assert spec.vision_config["num_hidden_layers"] == 6 and spec.vision_config["hidden_size"] == 192
    assert spec.system_prompt is None
    assert PRESETS["smol"].vision_config["num_hidden_layers"] == 4  # the preset itself is untouched
    with pytest.raises(KanvaError, match="unknown field"):
        resolve_preset("tiny", {"no_such_field": 1})
    with pytest.raises(KanvaError, match="projector"):
        resolve_preset("tiny", {"projector": "mlp3x"})
    with pytest.raises(KanvaError, match="unknown preset"):
        resolve_preset("huge")


def test_llava_15_7b_resolves_to_the_published_recipe():
    spec = resolve_preset("llava-1.5-7b")
    assert spec.vision == "openai/clip-vit-large-patch14-336" and spec.vision_config is None
    assert spec.lm == "lmsys/vicuna-7b-v1.5"
    assert spec.projector == "mlp2x_gelu" and spec.vision_feature_layer == -2
    assert spec.vision_feature_select_strategy is None  # -> "default" (drop CLS) for a CLIP checkpoint
    assert spec.chat_template == "vicuna_v1" and spec.image_aspect_ratio == "pad"
    from kanva.model.templates import get_template

    text = _render(get_template("vicuna_v1", spec.system_prompt).jinja,
                   [{"role": "user", "content": "<image>\nHi"}, {"role": "assistant", "content": "Yo"},
                    {"role": "user", "content": "More"}])
    assert text == f"<s>{spec.system_prompt} USER: <image>\nHi ASSISTANT: Yo</s>USER: More ASSISTANT:"


def _render(jinja, messages):
    import jinja2

    return jinja2.Environment().from_string(jinja).render(messages=messages, add_generation_prompt=True,
                                                          bos_token="<s>", eos_token="</s>")


def test_system_prompt_is_escaped_and_overridable():
    from kanva.model.templates import get_template

    tricky = 'Say "hi" \\ {{ x }}\nthen stop.'
    text = _render(get_template("chatml", tricky).jinja, [{"role": "user", "content": "Q"}])
    assert text == f"<|im_start|>system\n{tricky}<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    own = _render(get_template("chatml", tricky).jinja, [{"role": "system", "content": "S"},
                                                         {"role": "user", "content": "Q"}])
    assert own.startswith("<|im_start|>system\nS<|im_end|>") and tricky not in own


def test_cli_build(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["model", "build", "--preset", "tiny", "--out", str(out), "--seed", "3",
                 "--set", "vision_config.num_hidden_layers=3"]) == 0
    record = json.loads((out / "kanva.json").read_text())
    assert record["seed"] == 3 and record["parts"]["vision_layers"]["total"] == 3
    assert main(["model", "build", "--preset", "tiny", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
