"""What every HTTP response of the server gets, whatever its route: security headers, and an unexpected
error answered as one 500 in OpenAI's error schema.

Headers: the chat page holds an API key field, so no other site may frame it (`frame-ancestors 'none'`,
`X-Frame-Options`), no response is content-sniffed into something else (`nosniff`), and the page runs only
its own inline script and style (a Content-Security-Policy naming their SHA-256 hashes; images and video
only from data:/blob: URLs the page made; requests only to this origin). API responses get a CSP that
allows nothing, since they are never meant to render.

Errors: Starlette's own handler for unexpected exceptions sends the 500 and then re-raises, so the server
logs the error twice and closes the client's keep-alive connection. Here the error is logged once and the
connection stays usable; an error after the response has started (mid-stream) still propagates.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re

from fastapi.responses import JSONResponse

from kanva.serve.errors import APIError

log = logging.getLogger("kanva.serve")

API_CSP = "default-src 'none'; frame-ancestors 'none'"
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": API_CSP,
}


def page_csp(html: str) -> str:
    """The Content-Security-Policy of a page whose only code is its inline <script> and <style> blocks."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", html, flags=re.S | re.I)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    none = "'none'"
    return (f"default-src 'none'; script-src {hashes('script') or none}; style-src {hashes('style') or none}; "
            "img-src data: blob:; media-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


class Guard:
    """ASGI middleware: security headers on every response (a route's own CSP wins), contained 500s."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in BASE_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as e:
            if started:  # part of the answer is out: only closing the connection can say it failed
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            err = APIError(500, f"internal error: {type(e).__name__}", type="server_error")
            await JSONResponse(err.body(), status_code=500)(scope, receive, send_with_headers)
