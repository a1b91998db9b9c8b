"""Generator: batched == single greedy, seeded sampling, stop strings, streamer, `kanva chat` (its equality
with plain transformers is in test_model_templates.py)."""

import numpy as np
import pytest
import torch
from PIL import Image

from kanva.cli import main
from kanva.errors import KanvaError
from kanva.infer import Generator, cut_at_stop


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def gen(tiny):
    return Generator.load(tiny)


def noise(h, w, seed):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


ROWS = [
    ([noise(32, 32, 0)], [{"role": "user", "content": "What is this?"}]),
    ([], [{"role": "user", "content": "How many dogs are in the park today, and what colour are they?"}]),
    ([noise(48, 32, 1)], [{"role": "user", "content": "<image>\nColour?"}, {"role": "assistant", "content": "Red."},
                          {"role": "user", "content": "Sure?"}]),
    ([noise(32, 40, 2)], [{"role": "user", "content": "Describe it."}]),
]


def test_batched_greedy_equals_one_by_one(gen):
    batched = gen.generate(ROWS, max_new_tokens=12)
    single = [gen.generate([row], max_new_tokens=12)[0] for row in ROWS]
    assert batched == single
    assert all(batched) and len(set(batched)) == len(batched)  # real, distinct outputs


def test_sampling_is_seeded_and_leaves_global_rng_alone(gen):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = gen.generate(ROWS[:2], max_new_tokens=8, temperature=1.0, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    b = gen.generate(ROWS[:2], max_new_tokens=8, temperature=1.0, seed=7)
    c = gen.generate(ROWS[:2], max_new_tokens=8, temperature=1.0, seed=8)
    assert a == b and a != c
    assert a != gen.generate(ROWS[:2], max_new_tokens=8)  # sampling differs from greedy


def test_unseeded_sampling_differs_between_calls(gen):
    # Without a seed each call draws fresh randomness (a server answering twice must not repeat itself).
    outs = {tuple(gen.generate(ROWS[:2], max_new_tokens=8, temperature=1.0)) for _ in range(3)}
    assert len(outs) > 1


def test_stop_strings_cut_each_row(gen):
    full = gen.generate(ROWS, max_new_tokens=12)
    # Stop at the second character of each row's own greedy answer: the row ends before it.
    stops = sorted({text[1] for text in full if len(text) > 2})
    cut = gen.generate(ROWS, max_new_tokens=12, stop=stops)
    for f, c in zip(full, cut):
        assert c == cut_at_stop(f, stops) and len(c) < len(f)


def test_a_vanishing_temperature_is_greedy(gen):
    """Logits divided by 1e-300 overflow to inf (sampling then fails on NaN): below GREEDY_BELOW it is greedy."""
    greedy = gen.generate(ROWS[:2], max_new_tokens=8)
    assert gen.generate(ROWS[:2], max_new_tokens=8, temperature=1e-300, seed=3) == greedy
    with pytest.raises(KanvaError, match="temperature"):
        gen.generate(ROWS[:1], max_new_tokens=8, temperature=float("nan"))


def test_cut_at_stop():
    assert cut_at_stop("abc. def", ["."]) == "abc"
    assert cut_at_stop("abc. d\nef", ["\n", "."]) == "abc"
    assert cut_at_stop("abc", None) == "abc" and cut_at_stop("abc", ["x"]) == "abc"


def test_streamer_sees_the_generated_tokens(gen):
    from transformers.generation.streamers import BaseStreamer

    class Collect(BaseStreamer):
        def __init__(self):
            self.calls = []

        def put(self, value):
            self.calls.append(value.tolist())

        def end(self):
            self.calls.append("end")

    s = Collect()
    out = gen.generate([ROWS[0]], max_new_tokens=6, streamer=s)
    assert s.calls[-1] == "end"
    steps = [c[0] if isinstance(c[0], int) else c for c in s.calls[1:-1]]
    assert gen.proc.decode(steps) == out[0]


def test_chat_bad_image_is_a_clear_error(tiny, tmp_path, capsys):
    assert main(["chat", "--model", str(tiny), "--image", str(tmp_path / "none.png"), "--prompt", "Hi"]) == 2
    assert "none.png does not exist" in capsys.readouterr().err


def test_chat_repl(tiny, tmp_path, monkeypatch, capsys):
    import io

    noise(32, 32, 6).save(tmp_path / "r.png")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"hello\n/image {tmp_path / 'r.png'}\nwhat?\n/reset\n/quit\n"))
    assert main(["chat", "--model", str(tiny), "--max-new-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("kanva> ") == 2
    assert "conversation cleared" in captured.err


def test_image_placement_forms_agree(gen):
    """No <image> given: it goes in front of the first user message, in string or list-of-parts form."""
    im = noise(32, 32, 9)
    proc = gen.proc
    implicit = proc.encode_prompt([im], [{"role": "user", "content": "Hi"}])[0]
    explicit = proc.encode_prompt([im], [{"role": "user", "content": "<image>\nHi"}])[0]
    parts = proc.encode_prompt([im], [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])[0]
    assert implicit == explicit == parts
    assert implicit.count(proc.image_token_id) == proc.num_image_tokens
    from kanva.errors import KanvaError

    with pytest.raises(KanvaError, match="2 <image> for 1 image"):
        proc.encode_prompt([im], [{"role": "user", "content": "<image><image>Hi"}])
