"""Turn an `image_url` content part into a PIL image, within the server's limits.

Accepted: `data:image/...;base64,...` URLs always; `http(s)://` only when the server was started with
`--allow-remote-images`. Never `file://` or a local path: a request must not make the server read its own disk.
Size is checked before work is spent on it: base64 length before decoding, Content-Length and a running count
while downloading (all of it within a wall-clock deadline: a per-read timeout alone lets a server that sends
a byte a second hold a request for as long as it likes), and width*height from the image header before any
pixels are decoded (a small PNG can declare a gigapixel canvas: a decompression bomb).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from kanva.serve.errors import APIError, limit_error
from kanva.serve.limits import Limits

# Formats decoded in-process by Pillow. Leaving out EPS/PDF keeps Pillow from ever running Ghostscript on
# request data; these cover what browsers and phones produce.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


def parse_data_url(url: str, where: str, limits: Limits, kind: str = "image") -> bytes:
    """Bytes of an RFC 2397 data URL whose media type is `kind`/* (image or video), within
    max_{kind}_bytes. Raises APIError naming `where`."""
    limit_name = f"max_{kind}_bytes"
    limit = getattr(limits, limit_name)
    example = "data:image/png;base64,..." if kind == "image" else "data:video/mp4;base64,..."
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise APIError(400, f"{where}: malformed data URL (no ',' before the data)", param=where)
    params = header.split(";")
    media_type = params[0].strip().lower() or "text/plain"
    if not media_type.startswith(f"{kind}/"):
        raise APIError(
            400,
            f"{where}: data URL has media type {media_type!r}; expected {'an' if kind == 'image' else 'a'} {kind} "
            f"({example})",
            param=where,
        )
    is_base64 = params[-1].strip().lower() == "base64"
    # A base64 string of n characters decodes to about 3n/4 bytes: refuse before allocating them.
    approx = len(payload) * 3 // 4 if is_base64 else len(payload)
    if approx > limit:
        raise limit_error(limit_name, limit, approx, status=413, param=where)
    try:
        data = base64.b64decode(payload, validate=True) if is_base64 else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as e:
        raise APIError(400, f"{where}: data URL is not valid base64 ({e})", param=where) from None
    if len(data) > limit:
        raise limit_error(limit_name, limit, len(data), status=413, param=where)
    return data


async def fetch_remote(url: str, where: str, limits: Limits) -> bytes:
    """Download an http(s) image, stopping as soon as it passes max_image_bytes or remote_image_timeout_s."""
    deadline = limits.remote_image_timeout_s
    try:
        async with asyncio.timeout(deadline):
            return await _download(url, where, limits, deadline)
    except TimeoutError:
        raise APIError(400, f"{where}: fetching {url} took longer than {deadline} s (remote_image_timeout_s, "
                       "server flag --remote-image-timeout-s)", param=where, code="remote_image_timeout") from None
    except httpx.HTTPError as e:
        # Some httpx errors (a read timeout) carry no text: the class name is then the message.
        raise APIError(400, f"{where}: could not fetch {url}: {str(e) or type(e).__name__}", param=where) from None


async def _download(url: str, where: str, limits: Limits, timeout: float) -> bytes:
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=3) as client:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise APIError(400, f"{where}: fetching {url} gave HTTP {resp.status_code}", param=where)
            declared = int(resp.headers.get("content-length") or 0)
            if declared > limits.max_image_bytes:
                raise limit_error("max_image_bytes", limits.max_image_bytes, declared, status=413, param=where)
            buf = bytearray()
            async for chunk in resp.aiter_bytes():
                buf += chunk
                if len(buf) > limits.max_image_bytes:
                    raise limit_error("max_image_bytes", limits.max_image_bytes, len(buf), status=413, param=where)
            return bytes(buf)


def open_image(data: bytes, where: str, limits: Limits) -> Image.Image:
    """The image in `data` with only its header read; max_image_pixels is checked on that header."""
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)  # lazy: reads the header only
    except Image.DecompressionBombError as e:  # Pillow's own ceiling, above ours, trips while opening
        raise APIError(
            400,
            f"{where}: max_image_pixels exceeded: {e} (the limit is {limits.max_image_pixels}, "
            "server flag --max-image-pixels)",
            param=where,
            code="max_image_pixels_exceeded",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise APIError(400, f"{where}: not a decodable image (accepted formats: {', '.join(FORMATS)})", param=where) from None
    width, height = im.size
    if width * height > limits.max_image_pixels:
        raise limit_error("max_image_pixels", limits.max_image_pixels, width * height, param=where)
    return im


def decode_opened(im: Image.Image, where: str) -> Image.Image:
    """Decode an `open_image` result to RGB (the first frame of an animation)."""
    try:
        return im.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise APIError(400, f"{where}: image data is corrupt or truncated ({e})", param=where) from None


def decode_image(data: bytes, where: str, limits: Limits) -> Image.Image:
    """An RGB image from encoded bytes; the pixel cap is checked on the header, before decoding."""
    return decode_opened(open_image(data, where, limits), where)


async def load_image_bytes(url: str, where: str, limits: Limits, allow_remote: bool) -> bytes:
    """The encoded bytes an image URL points to, after the URL policy check."""
    scheme = urlsplit(url).scheme.lower() if ":" in url else ""
    if scheme == "data":
        return parse_data_url(url, where, limits)
    if scheme in ("http", "https"):
        if not allow_remote:
            raise APIError(
                400,
                f"{where}: remote image URLs are disabled; send the image as a base64 data URL "
                "or start the server with --allow-remote-images",
                param=where,
                code="remote_images_disabled",
            )
        return await fetch_remote(url, where, limits)
    shown = f"scheme {scheme!r}" if scheme else "a local path"
    raise APIError(
        400,
        f"{where}: {shown} is not accepted; use a data:image/...;base64 URL"
        + (" or http(s) (enabled)" if allow_remote else ""),
        param=where,
        code="unsupported_image_url",
    )
