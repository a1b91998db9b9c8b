"""Turn a video content part into a `Video` (frames sampled to the model's count), within the server's limits.

Two forms, as OpenAI-compatible servers take them:
- `{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..."}}` (vLLM's extension): the bytes are
  capped by max_video_bytes before decoding; decoding (PyAV) stops past max_frames frames or
  max_video_decode_s seconds, refuses frames over max_image_pixels (read from the stream header), and keeps
  only the sampled frames in memory;
- `{"type": "video", "video": ["data:image/jpeg;base64,...", ...]}`: a list of frames, each an image URL under
  the image rules; their count is checked against max_frames before any is decoded, and only the sampled
  frames are decoded.
Either way the sampled frames' pixels count against the request's max_request_pixels, checked on headers
before any frame is decoded (`pixel_budget`: what the request's images left).
Only data: URLs carry videos (a remote video would make the server download and decode for minutes).
"""

from __future__ import annotations

import asyncio

from kanva.model.video import Video, VideoError, VideoOverLimit, decode_video_bytes, sample_indices
from kanva.serve.errors import APIError, limit_error
from kanva.serve.images import decode_opened, load_image_bytes, open_image, parse_data_url
from kanva.serve.limits import Limits


async def load_video(source: str | list[str], where: str, limits: Limits, allow_remote_images: bool,
                     num_frames: int, pixel_budget: int) -> Video:
    """A `Video` of `num_frames` frames from a video data URL or a list of frame URLs."""
    if isinstance(source, list):
        if len(source) > limits.max_frames:
            raise limit_error("max_frames", limits.max_frames, len(source), param=where)
        picked = sample_indices(len(source), num_frames)
        opened = {}
        for k in sorted(set(picked)):
            data = await load_image_bytes(source[k], f"{where}[{k}]", limits, allow_remote_images)
            opened[k] = open_image(data, f"{where}[{k}]", limits)
        pixels = sum(opened[k].width * opened[k].height for k in picked)
        if pixels > pixel_budget:
            raise _over_pixels(limits, pixel_budget, pixels, where)
        frames = {k: await asyncio.to_thread(decode_opened, im, f"{where}[{k}]") for k, im in opened.items()}
        return Video([frames[k] for k in picked], where, len(source))
    if not source.lower().startswith("data:"):
        raise APIError(400, f"{where}: videos are accepted as data:video/...;base64 URLs (or a list of frame "
                       "image URLs)", param=where, code="unsupported_video_url")
    data = parse_data_url(source, where, limits, kind="video")
    try:
        return await asyncio.to_thread(decode_video_bytes, data, where, num_frames, limits.max_frames,
                                       limits.max_image_pixels, limits.max_video_decode_s, pixel_budget)
    except VideoOverLimit as e:
        if e.bound == "pixels":
            raise _over_pixels(limits, pixel_budget, int(e.got), where) from None
        if e.bound == "frames":
            raise limit_error("max_frames", int(e.limit), int(e.got), status=413, param=where) from None
        took = float(f"{e.got:.3g}")  # seconds, to 3 digits
        raise limit_error("max_video_decode_s", e.limit, took, status=413, param=where) from None
    except VideoError as e:
        raise APIError(400, f"{e} (video_unreadable)", param=where, code="video_unreadable") from None


def _over_pixels(limits: Limits, budget: int, pixels: int, where: str) -> APIError:
    """The request's pixels (its images' and this video's sampled frames') over max_request_pixels."""
    used = limits.max_request_pixels - budget
    return limit_error("max_request_pixels", limits.max_request_pixels, used + pixels, status=413, param=where)
