"""The onevision architecture (tiny-ov): kanva's encoding and chat equal plain transformers, token counts
equal transformers' own, bad media gets named errors, batches mix images and videos.

"Plain transformers" is LlavaOnevisionForConditionalGeneration + the saved LlavaOnevisionProcessor called
on typed chat content (`processor(text=..., images=...)` expands the placeholders itself). Where torchvision
is missing (this machine: no CPU wheel), transformers cannot instantiate the processor's video half, so the
processor comes from `kanva.model.onevision.load_processor` (the same class, from the same saved files) and
video frames from its PIL frame path; with torchvision the test uses `AutoProcessor` as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kanva.cli import main
from kanva.data.llava import SampleError
from conftest import write_mp4

N_NEW = 10


@pytest.fixture(scope="module")
def ov(tiny_ov_model):
    return tiny_ov_model


@pytest.fixture(scope="module")
def plain(ov):
    from transformers import LlavaOnevisionForConditionalGeneration
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(ov)
    else:
        from kanva.model.onevision import load_processor

        processor = load_processor(ov)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(ov, dtype=torch.float32).eval()
    return model, processor


def picture(seed: int, w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    big = picture(1, 128, 128)  # 4x the 32 px encoder input on each side
    big.save(d / "big.png")
    picture(2, 48, 40).save(d / "a.png")
    picture(3, 30, 50).save(d / "b.png")
    frames = d / "clip"
    frames.mkdir()
    for i in range(12):
        picture(10 + i, 40, 30).save(frames / f"{i:03d}.png")
    write_mp4(d / "clip.mp4", [picture(30 + i, 48, 32) for i in range(20)])
    return d


def plain_generate(plain, messages, images=None, video=None) -> tuple[str, int]:
    """Greedy answer and prompt length with transformers alone."""
    model, processor = plain
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    if video is None:
        inputs = processor(text=text, images=images or None, return_tensors="pt")
    else:
        if processor.video_processor is not None:
            pix = processor.video_processor(videos=[video], return_tensors="pt")["pixel_values_videos"]
        else:
            from kanva.model.onevision import _frame_processor

            pix = _frame_processor(processor.video_settings)(images=video, return_tensors="pt")["pixel_values"][None]
        # transformers' own expansion of <video> (what its processor call does with videos=...)
        expanded = text.replace(processor.video_token, processor.replace_video_token({"pixel_values_videos": pix}, 0))
        inputs = {**processor.tokenizer(expanded, return_tensors="pt"), "pixel_values_videos": pix}
    out = model.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, eos_token_id=model.generation_config.eos_token_id)
    n = inputs["input_ids"].shape[1]
    return processor.tokenizer.decode(out[0, n:], skip_special_tokens=True), n


def kanva_chat(capsys, ov, *args) -> str:
    capsys.readouterr()
    assert main(["chat", "--model", str(ov), "--max-new-tokens", str(N_NEW), *args]) == 0
    return capsys.readouterr().out.rstrip("\n")


def test_one_big_image_equals_transformers(ov, plain, media, capsys):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    want, n = plain_generate(plain, msgs, images=[Image.open(media / "big.png").convert("RGB")])
    assert kanva_chat(capsys, ov, "--image", str(media / "big.png"), "--prompt", "What is this?") == want
    from kanva.infer import Generator

    ids, vision = Generator.load(ov).proc.encode_prompt([Image.open(media / "big.png")],
                                                       [{"role": "user", "content": "What is this?"}])
    assert len(ids) == n and vision["pixel_values"].shape[1] == 10  # 3x3 AnyRes crops + the base view


def test_two_images_in_two_turns_equal_transformers(ov, plain, media, capsys, monkeypatch):
    import io

    from kanva.infer import Generator

    a, b = (Image.open(media / n).convert("RGB") for n in ("a.png", "b.png"))
    typed = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
             {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this?"}]}]
    want, n = plain_generate(plain, typed, images=[[a, b]])
    # the REPL: --image attaches to the first message, /image to the next
    monkeypatch.setattr("sys.stdin", io.StringIO(f"What is this?\n/image {media / 'b.png'}\nAnd this?\n"))
    capsys.readouterr()
    assert main(["chat", "--model", str(ov), "--max-new-tokens", str(N_NEW), "--image", str(media / "a.png")]) == 0
    # stdout: "kanva> ANSWER\nyou> " per turn (the streamed answer, then the next prompt)
    printed = [t.rsplit("\nyou>", 1)[0].strip() for t in capsys.readouterr().out.split("kanva> ")[1:3]]
    gen = Generator.load(ov)
    msgs = [{"role": "user", "content": "<image>\nWhat is this?"}, {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "<image>\nAnd this?"}]
    assert gen.generate([([a, b], msgs)], max_new_tokens=N_NEW)[0] == want
    ids, _ = gen.proc.encode_prompt([a, b], msgs)
    assert len(ids) == n
    # the REPL's turns are transformers' answers: the first about a, the second about b after that exchange
    first = plain_generate(plain, typed[:1], images=[a])[0]
    typed[1]["content"] = [{"type": "text", "text": first}]
    assert printed == [first.strip(), plain_generate(plain, typed, images=[[a, b]])[0].strip()]


def test_video_frames_equal_transformers(ov, plain, media, capsys):
    from kanva.model.video import read_video

    video = read_video(media / "clip", 8)
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    want, n = plain_generate(plain, msgs, video=video.frames)
    assert kanva_chat(capsys, ov, "--video", str(media / "clip"), "--prompt", "What happens?") == want
    assert n - len(plain[1].tokenizer(plain[1].apply_chat_template(msgs, add_generation_prompt=True)).input_ids) \
        == 8 * 4  # 8 frames x 2x2 pooled, +1 newline replacing the one <video> token


def test_token_counts_equal_transformers(ov, plain):
    """Per image (single, AnyRes; multi, base views) and per video, kanva's counts are transformers'."""
    from kanva.model import KanvaProcessor
    from kanva.model.video import Video

    proc = KanvaProcessor.from_pretrained(ov)
    processor = plain[1]
    for size in [(32, 32), (128, 128), (40, 70), (200, 30), (96, 64)]:
        h, w = size
        want = processor._get_num_multimodal_tokens(image_sizes=[size]).num_image_tokens[0]
        assert proc.image_token_counts([size]) == [want]
        text = processor(text="<image>", images=[picture(0, w, h)], return_tensors="pt")["input_ids"]
        assert int((text == proc.image_token_id).sum()) == want
    multi = processor(text="<image><image>", images=[[picture(0, 40, 30), picture(1, 90, 60)]], return_tensors="pt")
    assert proc.image_token_counts([(30, 40), (60, 90)]) == [17, 17]
    assert int((multi["input_ids"] == proc.image_token_id).sum()) == 34
    want = processor._get_num_multimodal_tokens(video_sizes=[(8, 32, 32)]).num_video_tokens[0]
    assert proc.video_token_count(Video([picture(0, 8, 8)] * 8)) == want == 8 * 4 + 1


def test_mismatched_counts_are_named_errors(ov, media):
    from kanva.model import KanvaProcessor

    proc = KanvaProcessor.from_pretrained(ov)
    conv = lambda q: [{"from": "human", "value": q}, {"from": "gpt", "value": "A."}]  # noqa: E731
    with pytest.raises(SampleError) as e:
        proc.encode({"id": "x", "image": ["a.png", "b.png"], "conversations": conv("<image> one only")},
                    image_root=media, source="d.json")
    assert e.value.reason == "image_tokens" and "d.json" in str(e.value) and "'x'" in str(e.value)
    with pytest.raises(SampleError) as e:
        proc.encode({"id": "v", "video": "clip.mp4", "conversations": conv("<video><video> twice")},
                    image_root=media, source="d.json")
    assert e.value.reason == "video_tokens"
    (media / "bad.mp4").write_bytes(b"not a video at all")
    for name, reason in (("bad.mp4", "video_unreadable"), ("gone.mp4", "missing_video")):
        with pytest.raises(SampleError) as e:
            proc.encode({"id": "v", "video": name, "conversations": conv("<video>\nQ")}, image_root=media)
        assert e.value.reason == reason and name in str(e.value)


def test_encode_interleaved_sample_masks_only_answers(ov, media):
    from kanva.model import KanvaProcessor
    from kanva.model.processor import IGNORE

    proc = KanvaProcessor.from_pretrained(ov)
    sample = {"id": "s", "image": ["a.png", "b.png"], "video": "clip.mp4", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "<image> and <video>?"}, {"from": "gpt", "value": "A dog runs."}]}
    enc = proc.encode(sample, image_root=media)
    assert enc.input_ids.count(proc.image_token_id) == 34 and enc.input_ids.count(proc.video_token_id) == 33
    sup = [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]
    assert proc.tokenizer.decode(sup) == "A cat.<|im_end|>A dog runs.<|im_end|>"
    assert enc.vision["pixel_values_videos"].shape == (1, 8, 3, 32, 32)
    assert enc.pixel_values.shape[:2] == (2, 1) and enc.vision["batch_num_images"].tolist() == [2]


def test_mp4_is_sampled_uniformly(media):
    from kanva.model.video import read_video, sample_indices

    assert sample_indices(20, 8) == [0, 3, 5, 8, 11, 14, 16, 19]
    assert sample_indices(3, 5) == [0, 0, 1, 2, 2]
    v = read_video(media / "clip.mp4", 8)
    assert len(v.frames) == 8 and v.total_frames == 20 and v.frames[0].size == (48, 32)


def test_saved_checkpoint_is_plain_llava_onevision(ov):
    cfg = json.loads((ov / "config.json").read_text())
    proc = json.loads((ov / "processor_config.json").read_text())
    assert cfg["model_type"] == "llava_onevision" and cfg["vision_aspect_ratio"] == "anyres_max_4"
    assert cfg["image_grid_pinpoints"][-1] == [96, 96] and proc["processor_class"] == "LlavaOnevisionProcessor"
    assert proc["video_processor"]["video_processor_type"] == "LlavaOnevisionVideoProcessor"


def test_set_overrides_pinpoints_and_budget(tmp_path, capsys):
    from kanva.model import build_preset
    from kanva.model.processor import KanvaProcessor

    out = build_preset("tiny-ov", tmp_path / "m", overrides={"image_grid_pinpoints": [[32, 32], [64, 64]],
                                                            "vision_aspect_ratio": "anyres_max_1"})
    proc = KanvaProcessor.from_pretrained(out)
    # 64x64 grid: 8x8 features > 1.1x the 1-crop budget -> interpolated to 4x4 (+4 newlines) + 16 base
    assert proc.image_token_counts([(128, 128)]) == [16 + 4 + 16]
    assert main(["model", "build", "--preset", "tiny-ov", "--out", str(tmp_path / "x"),
                 "--set", "image_grid_pinpoints=[[30, 30]]"]) == 2
    assert proc.architecture == "onevision" and proc.image_aspect_ratio == "anyres"
    assert main(["model", "build", "--preset", "tiny", "--out", str(tmp_path / "y"),
                 "--set", "image_aspect_ratio=anyres"]) == 2
    assert "architecture 'llava' takes image_aspect_ratio 'pad' or 'resize', got 'anyres'" in capsys.readouterr().err
    assert main(["model", "build", "--preset", "tiny-ov", "--out", str(tmp_path / "z"),
                 "--set", "image_aspect_ratio=pad"]) == 2
    assert "architecture 'onevision' takes image_aspect_ratio 'anyres', got 'pad'" in capsys.readouterr().err


def test_stage_recipe_trains_vision_with_its_own_lr_on_mixed_media(ov, media, tmp_path):
    """One stage over single-image (AnyRes), two-image and video samples, padded then packed: every part
    learns (vision at its own lr, the newline feature with the projector) and the result is a model kanva
    and transformers load."""
    from safetensors.torch import load_file

    from kanva.infer import Generator
    from kanva.train.recipe import recipe_from_dict
    from kanva.train.trainer import run_recipe

    turn = lambda h, g: [{"from": "human", "value": h}, {"from": "gpt", "value": g}]  # noqa: E731
    samples = [
        {"id": "one", "image": "big.png", "conversations": turn("<image>\nWhat is it?", "Noise, mostly.")},
        {"id": "two", "image": ["a.png", "b.png"],
         "conversations": turn("<image>\nThis?", "Red.") + turn("And <image>?", "Blue.")},
        {"id": "vid", "video": "clip", "conversations": turn("<video>\nWhat happens?", "Frames change.")},
        {"id": "file", "video": "clip.mp4", "conversations": turn("<video>\nAnd here?", "The same.")},
    ]
    data = media / "mixed.json"
    data.write_text(json.dumps(samples))
    stage = {"name": "ov", "trainable": ["vision", "projector", "lm"], "data": [{"path": str(data)}],
             "lr": {"vision": 1e-4, "projector": 1e-3, "lm": 1e-3}, "steps": 1, "batch_size": 4,
             "max_length": 512, "warmup_ratio": 0.0}
    for packing in (False, True):
        out = tmp_path / f"run-{packing}"
        recipe = recipe_from_dict({"model": {"path": str(ov)}, "seed": 0,
                                   "stages": [{**stage, "packing": packing}]}, source="test.yaml")
        res = run_recipe(recipe, out)
        final = Path(res[0].final_dir)
        before, after = load_file(str(ov / "model.safetensors")), load_file(str(final / "model.safetensors"))
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        for part in ("vision_tower.", "multi_modal_projector.", "image_newline", "language_model."):
            assert any(part in k for k in changed), (packing, part)
    gen = Generator.load(final)
    assert len(gen.generate([([Image.open(media / "big.png")], [{"role": "user", "content": "Hi"}])],
                            max_new_tokens=3)) == 1


def test_export_writes_what_vllms_onevision_loader_reads(ov, media, tmp_path, capsys):
    from kanva.infer import Generator
    from kanva.serve.vllm_check import check_onevision_for_vllm

    out = tmp_path / "hf"
    assert main(["export", "--model", str(ov), "--out", str(out), "--dtype", "float32"]) == 0
    assert "anyres_max_4" in capsys.readouterr().err  # older vLLM releases assume anyres_max_9: warned
    config = json.loads((out / "config.json").read_text())
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    errors, warnings = check_onevision_for_vllm(config, names)
    assert errors == [] and len(warnings) == 1 and config["text_config"]["architectures"] == ["LlamaForCausalLM"]
    bad = {**config, "multimodal_projector_bias": False, "vision_feature_layer": [-2, -1],
           "vision_config": {**config["vision_config"], "model_type": "dinov2"}, "video_token_index": 10**6}
    errors, _ = check_onevision_for_vllm(bad, [n for n in names if n != "image_newline"])
    for needle in ("multimodal_projector_bias", "vision_feature_layer", "dinov2", "video_token_index", "image_newline"):
        assert any(needle in e for e in errors), needle
    rows = [([Image.open(media / "big.png")], [{"role": "user", "content": "What is this?"}])]
    assert Generator.load(out).generate(rows, max_new_tokens=6) == Generator.load(ov).generate(rows, max_new_tokens=6)


def test_mp4_by_flag_and_by_repl_command_equal_transformers(ov, plain, media, capsys, monkeypatch):
    """An mp4 file (PyAV) given as --video, or attached in the REPL with /video, answers as transformers does
    on the same sampled frames."""
    import io

    from kanva.model.video import read_video

    video = read_video(media / "clip.mp4", 8)
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    want = plain_generate(plain, msgs, video=video.frames)[0]
    assert kanva_chat(capsys, ov, "--video", str(media / "clip.mp4"), "--prompt", "What happens?") == want
    monkeypatch.setattr("sys.stdin", io.StringIO(f"/video {media / 'clip.mp4'}\nWhat happens?\n"))
    assert main(["chat", "--model", str(ov), "--max-new-tokens", str(N_NEW)]) == 0
    assert capsys.readouterr().out.split("kanva> ")[1].rsplit("\nyou>", 1)[0].strip() == want.strip()
