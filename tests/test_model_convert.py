"""`kanva model convert`: a small original-format LLaVA folder (LlavaLlamaForCausalLM layout) becomes a
Kanva model whose every tensor sits where it belongs and whose logits equal the original's forward."""

import json

import pytest
import torch
from safetensors.torch import save_file

from kanva.cli import main

IMG = 32
VT = "model.vision_tower.vision_tower.vision_model."  # the original layout: CLIPVisionTower > CLIPVisionModel


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from kanva.model.tiny_tokenizer import tiny_tokenizer

    d = tmp_path_factory.mktemp("orig")
    torch.manual_seed(0)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                            num_attention_heads=2, image_size=IMG, patch_size=8))  # fmt: skip
    clip.save_pretrained(d / "clip")
    CLIPImageProcessor(size={"shortest_edge": IMG}, crop_size={"height": IMG, "width": IMG}).save_pretrained(d / "clip")
    tok = tiny_tokenizer(400)
    tok.add_special_tokens({"additional_special_tokens": ["</s>"]})  # Vicuna's end of turn
    lm_cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                         pad_token_id=tok.pad_token_id)  # fmt: skip
    lm = LlamaForCausalLM(lm_cfg)
    src = d / "llava-v1.5-tiny"
    src.mkdir()
    tok.save_pretrained(src)
    weights = dict(lm.state_dict())
    weights |= {"model.mm_projector.0.weight": torch.randn(64, 32) * 0.2, "model.mm_projector.0.bias": torch.randn(64) * 0.1,
                "model.mm_projector.2.weight": torch.randn(64, 64) * 0.2, "model.mm_projector.2.bias": torch.randn(64) * 0.1}
    # a fine-tuned vision tower stored in the checkpoint: it must win over the mm_vision_tower weights
    weights |= {f"{VT}{k}": v + 0.01 * torch.randn_like(v) for k, v in clip.state_dict().items()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(src / "model.safetensors"))
    cfg = {**lm_cfg.to_dict(), "model_type": "llava_llama", "architectures": ["LlavaLlamaForCausalLM"],
           "mm_vision_tower": str(d / "clip"), "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
           "mm_vision_select_feature": "patch", "mm_hidden_size": 32, "image_aspect_ratio": "pad",
           "mm_use_im_start_end": False, "mm_use_im_patch_token": False}  # fmt: skip
    (src / "config.json").write_text(json.dumps(cfg))
    return src, weights


def _where(name: str) -> str:
    """Where an original tensor belongs in a transformers Llava checkpoint (the mapping under test)."""
    if name.startswith("model.mm_projector."):
        return name.replace("model.mm_projector.0.", "model.multi_modal_projector.linear_1.").replace(
            "model.mm_projector.2.", "model.multi_modal_projector.linear_2.")
    if name.startswith(VT):
        return "model.vision_tower." + name.removeprefix(VT)
    if name.startswith("model."):
        return "model.language_model." + name.removeprefix("model.")
    return name


def _original_logits(weights, clip_dir, ids_before, ids_after, pixels):
    """LLaVA's own forward from the original tensors: CLIP layer -2 without CLS, mm_projector, spliced embeddings."""
    from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    clip = CLIPVisionModel.from_pretrained(clip_dir)
    clip.load_state_dict({k.removeprefix(VT): v for k, v in weights.items() if k.startswith(VT)})
    feats = clip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    h = torch.nn.functional.gelu(feats @ weights["model.mm_projector.0.weight"].T + weights["model.mm_projector.0.bias"])
    img = h @ weights["model.mm_projector.2.weight"].T + weights["model.mm_projector.2.bias"]
    cfg = LlamaConfig(vocab_size=weights["lm_head.weight"].shape[0], hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)  # fmt: skip
    lm = LlamaForCausalLM(cfg)
    lm.load_state_dict({k: v for k, v in weights.items() if not k.startswith(("model.mm_projector", "model.vision_tower"))})
    emb = lm.get_input_embeddings()
    embeds = torch.cat([emb(ids_before), img, emb(ids_after)], dim=1)
    return lm(inputs_embeds=embeds).logits


def test_convert_places_every_tensor_and_keeps_the_logits(original, tmp_path):
    from transformers import LlavaForConditionalGeneration

    src, weights = original
    out = tmp_path / "kanva"
    assert main(["model", "convert", str(src), "--out", str(out)]) == 0
    model = LlavaForConditionalGeneration.from_pretrained(out).eval()
    converted = model.state_dict()
    for name, t in weights.items():
        dst = converted[_where(name)]
        torch.testing.assert_close(dst[: t.shape[0]] if dst.shape != t.shape else dst, t, msg=name)  # embeddings gain <image>
    record = json.loads((out / "kanva.json").read_text())
    assert record["converted_from"]["vision_weights_in_checkpoint"] and record["template"]["name"] == "vicuna_v1"

    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    n_img = (IMG // 8) ** 2
    before, after = torch.tensor([[5, 17, 42]]), torch.tensor([[7, 99, 3, 11]])
    ids = torch.cat([before, torch.full((1, n_img), model.config.image_token_id), after], dim=1)
    pixels = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        got = model(input_ids=ids, pixel_values=pixels).logits
        ref = _original_logits(weights, src.parent / "clip", before, after, pixels)
    torch.testing.assert_close(got[..., : ref.shape[-1]], ref, rtol=1e-4, atol=1e-5)


def test_convert_refuses_a_folder_without_llava_parts(original, tmp_path, capsys):
    src, _ = original
    cfg = json.loads((src / "config.json").read_text())
    bad = tmp_path / "plain"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if not k.startswith("mm_")}))
    assert main(["model", "convert", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "no mm_vision_tower: not an original-format LLaVA checkpoint" in capsys.readouterr().err
