"""KanvaProcessor: image handling, <image> expansion, per-message labels, truncation, and every bad input."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kanva.data.llava import SampleError
from kanva.errors import KanvaError
from kanva.model import IGNORE, KanvaProcessor, load_model


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def proc(tiny):
    return KanvaProcessor.from_pretrained(tiny)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    Image.new("RGB", (64, 32), (255, 0, 0)).save(root / "wide.png")
    Image.new("RGB", (32, 32), (0, 0, 255)).save(root / "square.png")
    full = (root / "wide.png").read_bytes()
    (root / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "notimage.png").write_text("hello")
    return root


def conv(*turns, image="square.png", sid="s"):
    s = {"id": sid, "conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": v}
                                      for i, v in enumerate(turns)]}
    if image:
        s["image"] = image
    return s


def supervised_text(proc, enc):
    ids = [t for t in enc.labels if t != IGNORE]
    return proc.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def test_image_tokens_expand_to_model_features(proc, images, tiny):
    enc = proc.encode(conv("<image>\nWhat?", "Red."), image_root=images, max_length=512)
    assert enc.input_ids.count(proc.image_token_id) == proc.num_image_tokens == 16
    assert enc.pixel_values.shape == (1, 3, 32, 32)
    assert all(enc.labels[i] == IGNORE for i, t in enumerate(enc.input_ids) if t == proc.image_token_id)
    model, _ = load_model(tiny)
    out = model(input_ids=torch.tensor([enc.input_ids]), pixel_values=enc.pixel_values,
                labels=torch.tensor([enc.labels]))
    assert torch.isfinite(out.loss)


def test_labels_cover_exactly_the_assistant_turns(proc, images):
    enc = proc.encode(conv("<image>\nWhat colour?", "Red.", "Sure?", "Yes, red."), image_root=images)
    assert supervised_text(proc, enc) == "Red.<|im_end|>Yes, red.<|im_end|>"
    assert enc.id == "s" and enc.truncated == 0
    # Everything before the first answer is prompt: unsupervised.
    first = next(i for i, t in enumerate(enc.labels) if t != IGNORE)
    prompt = proc.tokenizer.decode(enc.input_ids[:first], skip_special_tokens=False)
    assert prompt.endswith("<|im_start|>assistant\n") and "Red." not in prompt


def test_pad_keeps_aspect_with_mean_colour_and_resize_squashes(tiny, images):
    pad = KanvaProcessor.from_pretrained(tiny)
    enc = pad.encode(conv("<image>\nQ", "A", image="wide.png"), image_root=images)
    px = enc.pixel_values[0]  # 64x32 red centred on a 64x64 canvas of mean grey (0.5 -> 0 after normalising)
    assert px[:, 0, 16].abs().max() < 0.02  # top band: padding
    assert px[0, 16, 16] > 0.9 and px[1, 16, 16] < -0.9  # middle: red
    resize = KanvaProcessor(pad.processor, image_aspect_ratio="resize")
    px2 = resize.encode(conv("<image>\nQ", "A", image="wide.png"), image_root=images).pixel_values[0]
    assert px2[0, 0, 16] > 0.9  # squashed: red reaches the top
    assert pad.image_aspect_ratio == "pad"  # kanva.json's, else the architecture's first
    with pytest.raises(KanvaError, match="image_aspect_ratio of a 'llava' model must be 'pad' or 'resize', "
                                         "got 'anyres'"):
        KanvaProcessor(pad.processor, image_aspect_ratio="anyres")


def test_plain_template_is_image_caption_eos(proc, images):
    enc = proc.encode(conv("Describe briefly.\n<image>", "A red square."), image_root=images, template="plain")
    n = proc.num_image_tokens
    assert enc.input_ids[:n] == [proc.image_token_id] * n
    assert enc.input_ids[-1] == proc.tokenizer.eos_token_id
    assert supervised_text(proc, enc) == "A red square.<|im_end|>"
    assert "Describe" not in proc.tokenizer.decode(enc.input_ids)
    with pytest.raises(SampleError) as e:
        proc.encode(conv("<image>\nQ", "A", "Q2", "A2"), image_root=images, template="plain")
    assert e.value.reason == "roles"


def test_text_only_sample(proc):
    enc = proc.encode(conv("Hello?", "Hi.", image=None))
    assert enc.pixel_values is None and proc.image_token_id not in enc.input_ids
    assert supervised_text(proc, enc) == "Hi.<|im_end|>"


@pytest.mark.parametrize(
    "sample, reason, needle",
    [
        (conv("<image>\nQ", "A", image="nope.png", sid="m1"), "missing_image", "nope.png"),
        (conv("<image>\nQ", "A", image="truncated.png", sid="t1"), "corrupt_image", "truncated.png"),
        (conv("<image>\nQ", "A", image="notimage.png", sid="n1"), "corrupt_image", "notimage.png"),
        (conv("<image>\n<image>\nQ", "A", sid="two"), "image_tokens", "2 <image>"),
        ({"id": "g1", "image": "square.png", "conversations": [{"from": "gpt", "value": "<image>\nHi"},
                                                                {"from": "human", "value": "Q"}]}, "roles", "human"),
        (conv("<image>\nQ", "", sid="e1"), "empty_turn", "empty"),
    ],
)
def test_bad_samples_name_file_and_id(proc, images, sample, reason, needle):
    with pytest.raises(SampleError) as e:
        proc.encode(sample, image_root=images, source="data/train.json")
    assert e.value.reason == reason
    msg = str(e.value)
    assert "data/train.json" in msg and repr(sample["id"]) in msg and needle in msg


def test_100k_token_conversation(proc, images):
    long = "the red dog is near the blue car " * 12500  # ~100,000 tokens with the tiny BPE
    assert len(proc.tokenizer(long).input_ids) >= 100_000
    # A long answer after the image: the tail is cut and the Encoded says so.
    enc = proc.encode(conv("<image>\nTell me a story.", long, sid="long"), image_root=images, max_length=1024)
    assert len(enc.input_ids) == len(enc.labels) == 1024 and enc.truncated > 99_000
    assert enc.input_ids.count(proc.image_token_id) == 16 and enc.num_supervised > 900
    # A long question before the image: truncation would cut the image -> too_long.
    with pytest.raises(SampleError) as e:
        proc.encode(conv(long + "<image>", "Short.", sid="long2"), image_root=images, max_length=1024,
                    source="big.json")
    assert e.value.reason == "too_long" and "'long2'" in str(e.value) and "big.json" in str(e.value)
    # Long question and image first, but the answer falls outside: nothing left to learn -> too_long.
    with pytest.raises(SampleError) as e:
        proc.encode(conv("<image>\n" + long, "Short.", sid="long3"), image_root=images, max_length=1024)
    assert e.value.reason == "too_long" and "no supervised" in str(e.value)


def test_model_with_mismatched_token_count_is_refused(tiny, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    text = (broken / "processor_config.json").read_text().replace('"patch_size": 8', '"patch_size": 4')
    (broken / "processor_config.json").write_text(text)
    with pytest.raises(KanvaError, match="64 tokens but the vision tower produces 16"):
        load_model(broken)


# Text without "<" (so no accidental special tokens) and never blank; any other unicode, spaces, newlines.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<"), min_size=1,
               max_size=40).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=4), with_image=st.booleans())
def test_property_supervised_tokens_decode_to_assistant_turns(proc, images, pairs, with_image):
    turns = [t for pair in pairs for t in pair]
    if with_image:
        turns[0] = "<image>\n" + turns[0]
    sample = conv(*turns, image="square.png" if with_image else None)
    enc = proc.encode(sample, image_root=images)
    answers = [a for _, a in pairs]
    assert supervised_text(proc, enc) == "".join(a + "<|im_end|>" for a in answers)
    # Each supervised run is one assistant turn: as many runs as answers.
    runs = sum(1 for i, t in enumerate(enc.labels) if t != IGNORE and (i == 0 or enc.labels[i - 1] == IGNORE))
    assert runs == len(answers)
