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
    """Per-request caps (and one server-wide queue cap)."""

    max_request_bytes: int = 32 * MiB  # whole JSON body; base64 images make it ~4/3 of their bytes
    max_image_bytes: int = 16 * MiB  # one image, after base64 decoding / download
    max_image_pixels: int = 4096 * 4096  # width*height, read from the header before decoding (bomb-safe)
    max_images: int = 8  # images in one request, over all messages
    max_videos: int = 2  # videos in one request (video_url or a list of frames), over all messages
    max_video_bytes: int = 64 * MiB  # one video file, after base64 decoding
    max_frames: int = 3600  # frames one video may have (2 min at 30 fps): decoding stops past it
    max_video_decode_s: int = 30  # wall time decoding one video may take
    max_tokens: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 256  # used when a request sets none
    max_stop: int = 4  # stop strings per request (OpenAI allows up to 4)
    max_pending: int = 256  # requests queued or generating; more get 429 instead of piling up

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise KanvaError(f"--{f.name.replace('_', '-')} must be >= 1, got {getattr(self, f.name)}")
        if self.default_max_tokens > self.max_tokens:
            raise KanvaError(
                f"--default-max-tokens ({self.default_max_tokens}) must be <= --max-tokens ({self.max_tokens})"
            )
