"""Prefix sharing (kanva/infer/prefix.py): rows about the same image(s) decode from one prefix forward, with the
answers and first-step logits of the unshared batch, on a tiny LLaVA and a tiny OneVision (AnyRes crops, several
images per row, video)."""

import numpy as np
import torch
from PIL import Image

from kanva.infer import Generator
from kanva.infer.prefix import common_length, plan_groups, vision_digest
from kanva.model.video import Video


def noise(h, w, seed):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def ask(media, *texts):
    return [(list(media), [{"role": "user", "content": t}]) for t in texts]


def both(model_dir):
    shared = Generator.load(model_dir)
    return shared, Generator(shared.model, shared.proc, share_prefix=False)


def media_ids(gen):
    c = gen.model.config
    return {t for t in (c.image_token_id, getattr(c, "video_token_id", None)) if t is not None}


def check_same(shared, plain, rows, groups):
    """Shared and plain give the same greedy answers and close first-step logits; `groups` are the expected
    prefix groups (row indices), so a silent fallback to the plain path fails too."""
    enc = [shared.proc.encode_prompt(m, msgs) for m, msgs in rows]
    plan = plan_groups(enc, media_ids(shared))
    assert [g.rows for g in plan] == groups
    inputs = shared._inputs(enc)
    assert inputs["cache"].get_seq_length() == max(g.length for g in plan)  # the prefix really is cached
    real = inputs["attention_mask"].bool()
    assert [inputs["input_ids"][i][real[i]].tolist() for i in range(len(enc))] == [ids for ids, _ in enc]

    kw = dict(max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True,
              pad_token_id=shared.proc.tokenizer.pad_token_id)
    a = shared.model.generate(**shared._inputs(enc), **kw).logits[0]
    b = plain.model.generate(**plain._inputs(enc), **kw).logits[0]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    got = shared.generate(rows, max_new_tokens=10)
    assert got == plain.generate(rows, max_new_tokens=10)
    assert len(set(got)) > len(groups) // 2  # real, varied outputs (not all one string)


def test_llava_questions_per_image_share_their_prefix(tiny_model):
    shared, plain = both(tiny_model)
    a, b = noise(32, 32, 0), noise(40, 32, 1)
    rows = (ask([a], "What is this?", "Colour?", "How many dogs are in the park today, and why are they there?")
            + ask([], "Hello there, a question with no image")  # no image: shares nothing
            + ask([b], "Describe it.", "Is there a cat?")
            + [([a], [{"role": "user", "content": "<image>\nColour?"}, {"role": "assistant", "content": "Red."},
                      {"role": "user", "content": "Sure?"}])]
            + ask([b.transpose(Image.FLIP_LEFT_RIGHT)], "Describe it."))  # b's ids, other pixels: alone
    check_same(shared, plain, rows, [[0, 1, 2, 6], [3], [4, 5], [7]])
    torch.manual_seed(0)
    state = torch.get_rng_state()
    sampled = shared.generate(rows, max_new_tokens=6, temperature=1.0, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert sampled == plain.generate(rows, max_new_tokens=6, temperature=1.0, seed=5)  # the prefix draws nothing


def test_onevision_several_images_and_video(tiny_ov_model):
    shared, plain = both(tiny_ov_model)
    big, a, c = noise(64, 64, 0), noise(40, 32, 1), noise(30, 50, 2)  # big: AnyRes crops
    clip = Video([noise(32, 32, 10 + i) for i in range(8)], source="clip")
    two = "Image 1: <image> Image 2: <image> "
    rows = (ask([big, a], two + "Which is red?", two + "Are they the same?")
            + ask([big], "What is this?", "Colour?")
            + ask([c], "Alone")
            + ask([clip], "What happens?", "How many times?")
            + ask([big, c], two + "Are they the same?"))  # big's prefix up to image 2, then another image
    check_same(shared, plain, rows, [[0, 1], [2, 3], [4], [5, 6], [7]])


def test_no_shared_prefix_takes_the_plain_path(tiny_model):
    shared, _ = both(tiny_model)
    rows = ask([noise(32, 32, 0)], "What?") + ask([noise(32, 32, 1)], "What?") + ask([], "Hi", "Hi")
    enc = [shared.proc.encode_prompt(m, msgs) for m, msgs in rows]
    assert plan_groups(enc, media_ids(shared)) is None  # text-only rows share no image prefix
    assert "cache" not in shared._inputs(enc) and "pixel_values" in shared._inputs(enc)


def test_common_length_and_vision_digest():
    assert common_length([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert common_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # at least one token left to decode from
    x = {"pixel_values": torch.zeros(1, 3, 4, 4)}
    assert vision_digest(x) == vision_digest({"pixel_values": torch.zeros(1, 3, 4, 4)})
    assert vision_digest(x) != vision_digest({"pixel_values": torch.zeros(1, 3, 4, 4).index_fill(3, torch.tensor([0]), 1)})
    assert vision_digest(x) != vision_digest({"pixel_values": torch.zeros(1, 3, 2, 8)})
