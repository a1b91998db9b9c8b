"""The LLaVA data contract: loading JSON/JSONL, structural validation, skip counting, saving."""

import json

import pytest

from kanva.cli import main
from kanva.data.llava import (
    SampleError,
    format_skips,
    load_llava,
    load_llava_checked,
    sample_images,
    save_llava,
    validate_sample,
)


def sample(sid="s1", image="a.png", turns=None):
    turns = turns or [("human", "<image>\nWhat is it?"), ("gpt", "A dog.")]
    s = {"id": sid, "conversations": [{"from": f, "value": v} for f, v in turns]}
    if image is not None:
        s["image"] = image
    return s


def test_json_and_jsonl_load_the_same(tmp_path):
    samples = [sample("a"), sample("b", image=None, turns=[("human", "Hi"), ("gpt", "Hello")])]
    (tmp_path / "d.json").write_text(json.dumps(samples))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples) + "\n")
    assert load_llava(tmp_path / "d.json") == samples
    assert load_llava(tmp_path / "d.jsonl") == samples


def test_trailing_comma_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"id": "a", "conversations": []},\n]\n')
    with pytest.raises(SampleError) as e:
        load_llava(path)
    assert e.value.reason == "json"
    assert str(path) in str(e.value) and "line 3" in str(e.value) and "column 1" in str(e.value)


def test_jsonl_bad_line_is_skippable_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(sample("a")) + "\n{not json\n" + json.dumps(sample("b")) + "\n")
    with pytest.raises(SampleError, match=r"d.jsonl: invalid JSON at line 2, column 2"):
        load_llava(path)
    kept, skipped = load_llava_checked(path, skip_invalid=True)
    assert [s["id"] for s in kept] == ["a", "b"] and skipped == {"json": 1}


@pytest.mark.parametrize(
    "bad, reason, needle",
    [
        (sample(turns=[("gpt", "<image>\nHi"), ("human", "x")]), "roles", "starts with 'human'"),
        (sample(turns=[("human", "<image>\nQ"), ("gpt", "A"), ("gpt", "B")]), "roles", "conversations[2]"),
        (sample(turns=[("human", "<image>\nQ"), ("gpt", "A"), ("human", "more?")]), "roles", "unanswered"),
        (sample(turns=[("human", "<image>\nQ"), ("gpt", "  \n")]), "empty_turn", "conversations[1] (gpt) is empty"),
        (sample(turns=[("human", "<image>\n<image>\nQ"), ("gpt", "A")]), "image_tokens", "2 <image>"),
        (sample(turns=[("human", "Q"), ("gpt", "A")]), "image_tokens", "0 <image>"),
        (sample(image=None), "image_tokens", "0 image(s)"),
        (sample(turns=[("human", "<image>\nQ"), ("gpt", "A <image>")]), "image_tokens", "conversations[1] (gpt)"),
        (sample(turns=[("human", "<image>\nQ"), ("gpt", "A"), ("human", "<image> again"), ("gpt", "B")]),
         "image_tokens", "2 <image>"),
        ({**sample(), "video": "clip.mp4"}, "video_tokens", "0 <video>"),
        ({**sample(turns=[("human", "<image><video>\nQ"), ("gpt", "A")])}, "video_tokens", "0 video(s)"),
        ({**sample(), "video": 3}, "schema", "video"),
        (sample(image=["a.png", "b.png"]), "image_tokens", "2 image(s)"),
        (sample(image=[]), "schema", "image"),
        (sample(sid=""), "schema", "id"),
        ({"id": "x", "conversations": [{"from": "human"}]}, "schema", "conversations[0]"),
    ],
)
def test_structural_errors_have_reason_and_name_sample(bad, reason, needle):
    with pytest.raises(SampleError) as e:
        validate_sample(bad, source="f.json")
    assert e.value.reason == reason
    assert needle in str(e.value) and "f.json" in str(e.value)
    if isinstance(bad.get("id"), str) and bad["id"]:
        assert repr(bad["id"]) in str(e.value)


def test_image_list_with_one_token_per_image_is_valid():
    s = sample(image=["a.png", "b.png"], turns=[("human", "<image>\n<image>\nCompare."), ("gpt", "Same.")])
    validate_sample(s)
    assert sample_images(s) == ["a.png", "b.png"] and sample_images(sample()) == ["a.png"]


def test_skip_invalid_counts_per_reason(tmp_path):
    samples = [
        sample("ok1"),
        sample("r", turns=[("gpt", "x"), ("human", "y")]),
        sample("e", turns=[("human", "<image>\nQ"), ("gpt", "")]),
        sample("ok1"),  # duplicate id
        sample("e2", turns=[("human", "<image>\n"), ("gpt", "A")]),  # only the image: not empty
        sample("i", turns=[("human", "<image><image>Q"), ("gpt", "A")]),
    ]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(samples))
    with pytest.raises(SampleError):
        load_llava(path)
    kept, skipped = load_llava_checked(path, skip_invalid=True)
    assert [s["id"] for s in kept] == ["ok1", "e2"]
    assert skipped == {"roles": 1, "empty_turn": 1, "duplicate_id": 1, "image_tokens": 1}
    text = format_skips(skipped)
    assert "skipped 4" in text and "roles: 1" in text and "duplicate_id: 1" in text


def test_save_is_deterministic_and_round_trips(tmp_path):
    samples = [sample("b", image=None, turns=[("human", "Héllo ✓"), ("gpt", "ok")]), sample("a")]
    save_llava(samples, tmp_path / "x.json")
    save_llava(samples, tmp_path / "y.json")
    save_llava(samples, tmp_path / "z.jsonl")
    assert (tmp_path / "x.json").read_bytes() == (tmp_path / "y.json").read_bytes()
    assert load_llava(tmp_path / "x.json") == samples == load_llava(tmp_path / "z.jsonl")
    assert "Héllo ✓" in (tmp_path / "x.json").read_text(encoding="utf-8")


def test_save_refuses_invalid_samples(tmp_path):
    with pytest.raises(SampleError, match="roles"):
        save_llava([sample(turns=[("gpt", "x"), ("human", "y")])], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_missing_file_is_a_clear_error(tmp_path):
    from kanva.errors import KanvaError

    with pytest.raises(KanvaError, match="no such file"):
        load_llava(tmp_path / "nope.json")


def test_cli_check_data_prints_counts_per_reason(tmp_path, capsys, tiny_model):
    model = tiny_model
    from PIL import Image

    Image.new("RGB", (20, 10), (0, 128, 255)).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    samples = [sample("ok"), sample("gone", image="nope.png"), sample("cut", image="cut.png"),
               sample("r", turns=[("gpt", "x"), ("human", "y")])]
    (tmp_path / "d.json").write_text(json.dumps(samples))
    args = ["model", "check-data", "--model", str(model), "--data", str(tmp_path / "d.json")]
    assert main(args) == 2
    assert "[roles]" in capsys.readouterr().err
    assert main(args + ["--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "1 samples ok" in out
    assert "missing_image: 1" in out and "corrupt_image: 1" in out and "roles: 1" in out


def test_onevision_samples_interleave_images_and_carry_a_video():
    """Images may sit in any human turn (counted over all of them); a video has one <video>."""
    validate_sample(sample(image=["a.png", "b.png"], turns=[("human", "<image>\nQ"), ("gpt", "A"),
                                                              ("human", "and <image>?"), ("gpt", "B")]))
    validate_sample({**sample(image=None, turns=[("human", "<video>\nWhat happens?"), ("gpt", "A dog runs.")]),
                     "video": "clips/run.mp4"})
