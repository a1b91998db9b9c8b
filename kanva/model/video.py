"""Video input: a file (decoded with PyAV) or a folder of frames, sampled uniformly to a fixed frame count.

Every video becomes exactly `num_frames` frames: `num_frames` indices spread evenly over the video's frames
(first and last included; a video with fewer frames repeats some). A fixed count is what lets videos of
different lengths share one batch: transformers stacks the videos of a batch into one
[videos, frames, 3, H, W] tensor, so their frame counts must agree. LLaVA-OneVision samples its videos
the same way (evenly spaced frames, a fixed count per model).

Decoding is bounded: at most `max_decode_frames` frames are decoded (a long or lying file cannot keep a
worker busy), and only the sampled frames are kept as images (memory is `num_frames` frames, whatever
the video's length). Every failure is a `VideoError` naming the file; callers turn it into their own
error kind (a SampleError in training, a 400 in the server).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from kanva.errors import KanvaError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_DECODE_FRAMES = 20_000  # ~11 min at 30 fps: longer videos are refused rather than decoded for minutes


class VideoError(KanvaError):
    """A video that cannot be read; the message names it."""


class VideoOverLimit(VideoError):
    """A video over a decoding bound: `bound` is "frames" (more than `limit` frames) or "seconds" (decoding
    took more than `limit` seconds); `got` is what was seen."""

    def __init__(self, message: str, bound: str, limit: float, got: float):
        super().__init__(message)
        self.bound, self.limit, self.got = bound, limit, got


@dataclass
class Video:
    """Sampled RGB frames of one video, in order, and where they came from (for messages)."""

    frames: list[Image.Image]
    source: str = "video"
    total_frames: int = field(default=0)  # frames in the original video (before sampling)


def sample_indices(total: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread evenly over `range(total)`, first and last included."""
    if total < 1:
        raise ValueError("a video needs at least one frame")
    return [int(round(x)) for x in np.linspace(0, total - 1, num_frames)]


def frames_to_video(frames: list[Image.Image], num_frames: int, source: str = "frames") -> Video:
    """Sample a list of frames (already decoded) to `num_frames`."""
    if not frames:
        raise VideoError(f"{source}: a video needs at least one frame")
    picked = [frames[i].convert("RGB") for i in sample_indices(len(frames), num_frames)]
    return Video(picked, source, len(frames))


def _read_folder(path: Path, num_frames: int) -> Video:
    names = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not names:
        raise VideoError(f"video folder {path} has no frames ({', '.join(FRAME_SUFFIXES)})")
    frames = []
    for i in sorted(set(sample_indices(len(names), num_frames))):
        try:
            with Image.open(names[i]) as im:
                im.load()
                frames.append((i, im.convert("RGB")))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise VideoError(f"video frame {names[i]} cannot be decoded ({e})") from None
    by_index = dict(frames)
    return Video([by_index[i] for i in sample_indices(len(names), num_frames)], str(path), len(names))


def _decode(source, name: str, num_frames: int, max_decode_frames: int, max_pixels: int | None,
            max_seconds: float | None = None, max_total_pixels: int | None = None) -> Video:
    """Decode a video container (path or file object) with PyAV, keeping only the sampled frames."""
    import time

    import av

    deadline = None if max_seconds is None else (time.monotonic() + max_seconds, max_seconds)

    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise VideoError(f"{name}: has no video stream")
            stream = container.streams.video[0]
            if max_pixels is not None and stream.width * stream.height > max_pixels:
                raise VideoError(f"{name}: frames of {stream.width}x{stream.height} are over max_image_pixels "
                                 f"({max_pixels})")
            kept = num_frames * stream.width * stream.height  # what the sampled frames will hold, from the header
            if max_total_pixels is not None and kept > max_total_pixels:
                raise VideoOverLimit(f"{name}: {num_frames} frames of {stream.width}x{stream.height} are {kept} pixels, "
                                     f"over the {max_total_pixels} left", "pixels", max_total_pixels, kept)
            total = int(stream.frames or 0)
            if total > max_decode_frames:
                raise VideoOverLimit(f"{name}: {total} frames, over the {max_decode_frames} frames decoding is "
                                     "bounded to", "frames", max_decode_frames, total)
            if total == 0:  # the container does not say (webm, some streams): count by decoding, bounded
                total = sum(1 for _ in _frames(container, stream, name, max_decode_frames, deadline))
                container.seek(0)
            if total == 0:
                raise VideoError(f"{name}: has no decodable frames")
            wanted = sample_indices(total, num_frames)
            keep = set(wanted)
            got: dict[int, Image.Image] = {}
            for i, frame in enumerate(_frames(container, stream, name, max_decode_frames, deadline)):
                if i in keep:
                    got[i] = frame.to_image().convert("RGB")
                if i >= wanted[-1]:
                    break
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise VideoError(f"{name}: cannot be decoded as a video ({e})") from None
    if len(got) < len(keep):  # the container declared more frames than it holds: sample what is there
        if not got:
            raise VideoError(f"{name}: has no decodable frames")
        return frames_to_video([got[i] for i in sorted(got)], num_frames, name)
    return Video([got[i] for i in wanted], name, total)


def _frames(container, stream, name: str, limit: int, deadline: tuple[float, float] | None):
    import time

    for n, frame in enumerate(container.decode(stream)):
        if n >= limit:
            raise VideoOverLimit(f"{name}: more than {limit} frames; decoding is bounded to that many", "frames",
                                 limit, n + 1)
        late = 0.0 if deadline is None else time.monotonic() - deadline[0]
        if late > 0:  # `got`: the seconds decoding has run
            raise VideoOverLimit(f"{name}: decoding took over {deadline[1]} s (after {n} frames)", "seconds",
                                 deadline[1], deadline[1] + late)
        yield frame


def read_video(path: str | Path, num_frames: int, max_decode_frames: int = MAX_DECODE_FRAMES) -> Video:
    """A video file (mp4, webm, avi, ... anything FFmpeg reads) or a folder of frame images."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, num_frames)
    if not path.is_file():
        raise VideoError(f"video {path} does not exist")
    return _decode(str(path), f"video {path}", num_frames, max_decode_frames, None)


def decode_video_bytes(data: bytes, name: str, num_frames: int, max_decode_frames: int,
                       max_pixels: int | None = None, max_seconds: float | None = None,
                       max_total_pixels: int | None = None) -> Video:
    """A video from its encoded bytes (the server's data: URLs), bounded like `read_video` and also by frame
    size (`max_pixels`) and the sampled frames' total pixels (`max_total_pixels`), both read from the stream
    header before decoding, and by wall time (`max_seconds`)."""
    return _decode(io.BytesIO(data), name, num_frames, max_decode_frames, max_pixels, max_seconds, max_total_pixels)
