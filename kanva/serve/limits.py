"""The caps that keep one request from taking the server down.

Each field is also a `kanva serve` flag (`max_image_bytes` -> `--max-image-bytes`), and the 4xx a request
over a cap gets names the field, so a user knows which flag to raise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from kanva.errors import KanvaError

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Per-request caps (and two server-wide caps: the queue and the pixels being decoded)."""

    max_request_bytes: int = 32 * MiB  # whole JSON body; base64 images make it ~4/3 of their bytes
    max_image_bytes: int = 16 * MiB  # one image, after base64 decoding / download
    max_image_pixels: int = 4096 * 4096  # width*height, read from the header before decoding (bomb-safe)
    # Decoded pixels cost ~18 bytes each while an image becomes the model's input (decoded canvas, RGB copy,
    # the image processor's arrays), however few bytes the file has: a one-bit 4096x4096 PNG is 2 KB on the
    # wire and ~250 MB at its peak (benchmarks/serve_load.py measures it). LLaVA models see a few hundred
    # pixels a side, so a request rarely needs more than one such image's worth.
    max_request_pixels: int = 4096 * 4096  # the sum over one request's images, from their headers
    max_pixels_in_flight: int = 4096 * 4096  # being decoded at once, over all requests; the rest wait
    max_images: int = 8  # images in one request, over all messages
    max_videos: int = 2  # videos in one request (video_url or a list of frames), over all messages
    max_video_bytes: int = 64 * MiB  # one video file, after base64 decoding
    max_frames: int = 3600  # frames one video may have (2 min at 30 fps): decoding stops past it
    max_video_decode_s: float = 30.0  # wall time decoding one video may take, in seconds (checked per frame)
    max_tokens: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 256  # used when a request sets none
    max_stop: int = 4  # stop strings per request (OpenAI allows up to 4)
    max_pending: int = 256  # requests queued or generating; more get 429 instead of piling up
    remote_image_timeout_s: int = 10  # wall-clock deadline of one remote image download (--allow-remote-images)

    def __post_init__(self) -> None:
        for f in fields(self):  # counts and sizes are whole and >= 1; a float (seconds) is > 0
            value, whole = getattr(self, f.name), isinstance(f.default, int)
            if (value < 1) if whole else not (value > 0):
                raise KanvaError(f"--{f.name.replace('_', '-')} must be {'>= 1' if whole else '> 0'}, got {value}")
        if self.max_pixels_in_flight < self.max_request_pixels:  # else an allowed request could never decode
            raise KanvaError(f"--max-pixels-in-flight ({self.max_pixels_in_flight}) must be >= --max-request-pixels "
                             f"({self.max_request_pixels})")
        if self.default_max_tokens > self.max_tokens:
            raise KanvaError(
                f"--default-max-tokens ({self.default_max_tokens}) must be <= --max-tokens ({self.max_tokens})"
            )
