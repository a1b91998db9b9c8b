"""The embedded LM: GGUF -> cached safetensors (`kanva model prepare`), and the `smol` preset built from it."""

import json

import pytest
import torch

from kanva.cli import main
from kanva.model import lm


def test_interrupted_prepare_leaves_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("KANVA_CACHE", str(tmp_path))

    class Interrupted:
        def save_pretrained(self, path):
            (path / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt

    monkeypatch.setattr(lm, "_convert_gguf", lambda path: (Interrupted(), Interrupted()))
    with pytest.raises(KeyboardInterrupt):
        lm.prepare_smollm2()
    assert list(tmp_path.iterdir()) == []  # neither the final dir nor the temporary one


def test_missing_gguf_is_a_clear_error(tmp_path):
    from kanva.errors import KanvaError

    with pytest.raises(KanvaError, match="no such GGUF"):
        lm.load_lm(str(tmp_path / "model.gguf"))


@pytest.mark.slow
def test_prepare_converts_exactly_and_smol_builds_from_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KANVA_CACHE", str(tmp_path / "cache"))
    assert main(["model", "prepare"]) == 0
    path = lm.prepared_smollm2_dir()
    assert str(path) in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary leftovers
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30

    # The cached weights are the GGUF's, de-quantized: compare the embedding table read with `gguf` itself.
    from gguf import GGUFReader
    from gguf.quants import dequantize

    tensor = next(t for t in GGUFReader(lm.smollm2_gguf_path()).tensors if t.name == "token_embd.weight")
    expected = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())
    model, tok = lm.load_lm("smollm2")
    got = model.get_input_embeddings().weight.detach()
    assert got.shape == expected.shape == (49152, 576) and torch.equal(got, expected.to(got.dtype))
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied, as in SmolLM2
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert lm.prepare_smollm2() == path and (path / "model.safetensors").stat().st_mtime_ns == mtime  # cached

    from kanva.infer import Generator
    from kanva.model import build_preset

    out = build_preset("smol", tmp_path / "smol")
    gen = Generator.load(out)
    cfg = gen.model.config
    assert cfg.vision_config.num_hidden_layers == 4 and cfg.vision_config.hidden_size == 192
    assert gen.proc.num_image_tokens == 36 and cfg.projector_hidden_act == "gelu"
    assert cfg.text_config.num_hidden_layers == 30 and cfg.text_config.vocab_size == len(tok) + 1
    prompt = gen.proc.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "SmolLM" not in prompt  # the stock ~20-token default system prompt is gone
    # The converted LM still knows things: a text-only question through the whole LLaVA stack.
    answer = gen.generate([([], [{"role": "user", "content": "What is the capital of France?"}])],
                          max_new_tokens=12)[0]
    assert "Paris" in answer
