"""Fixtures shared by the suite."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The `tiny` preset (random weights, a few MB), built once for the whole suite.

    Shared: a test must not write into it (build or copy its own model to change one)."""
    from kanva.model import build_preset

    return build_preset("tiny", tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="session")
def tiny_ov_model(tmp_path_factory) -> Path:
    """The `tiny-ov` preset (onevision), built once for the whole suite; shared, read-only like tiny_model."""
    from kanva.model import build_preset

    return build_preset("tiny-ov", tmp_path_factory.mktemp("tiny-ov") / "tiny-ov")


def write_mp4(path, frames) -> None:
    """An MPEG-4 video of PIL `frames` at 10 fps (PyAV's bundled FFmpeg encoder)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for im in frames:
            out.mux(stream.encode(av.VideoFrame.from_image(im)))
        out.mux(stream.encode())


@pytest.fixture(scope="session")
def tiny_encoded(tiny_model, tmp_path_factory):
    """(tiny model dir, 4 encoded toy conversations with images + 1 text-only sample, pad id) for loss tests."""
    from kanva.data.llava import load_llava
    from kanva.model import KanvaProcessor
    from kanva.train.toy import make_toy_data

    toy = make_toy_data(tmp_path_factory.mktemp("toy"), n_images=6)
    proc = KanvaProcessor.from_pretrained(tiny_model)
    samples = load_llava(toy["instruct"])
    root = Path(toy["instruct"]).parent
    encs = [proc.encode(s, image_root=root, max_length=256, template="chat") for s in samples[:4]]
    encs.append(proc.encode(samples[-1], image_root=root, max_length=256))  # a text-only sample
    return tiny_model, encs, proc.tokenizer.pad_token_id


@pytest.fixture(scope="session")
def sequence_world(tmp_path_factory) -> Path:
    """A tiny world (64 px) with a few still images, multi-image sets and clips in `train`; read-only."""
    from kanva.world.config import load_world_config
    from kanva.world.generate import generate_world

    return generate_world(tmp_path_factory.mktemp("seqw") / "world", {"train": 3}, seed=3, cfg=load_world_config(),
                          size=64, workers=1, progress=False, sets={"train": 10}, clips={"train": 12})
