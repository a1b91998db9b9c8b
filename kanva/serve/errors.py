"""Errors the API returns, in OpenAI's error schema.

Clients written for OpenAI (the `openai` package, LangChain, curl scripts) read
`{"error": {"message", "type", "param", "code"}}` and raise a typed exception by status code,
so every 4xx/5xx this server sends has exactly that shape and a message naming the field or limit.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An HTTP error with an OpenAI-style body. Raised anywhere in a request; the app renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def limit_error(name: str, limit: float, got: float, *, status: int = 400, param: str | None = None) -> APIError:
    """A request over one of the server's caps: the message names the limit (as the CLI flag spells it)."""
    flag = "--" + name.replace("_", "-")
    return APIError(
        status,
        f"{name} exceeded: got {got}, the limit is {limit} (server flag {flag})",
        param=param,
        code=f"{name}_exceeded",
    )
