"""The server-wide budget of decoded pixels: how many may be turning into model input at once.

An image's memory while it is decoded and run through the image processor grows with its pixels, not with
its bytes (a one-bit PNG of 4096x4096 is 2 KB on the wire and ~170 MB decoded), so requests that each
respect `--max-image-pixels` and `--max-request-pixels` could still, arriving together, decode without
bound. A request holds its images' total width*height of this budget while they are decoded and encoded
with its prompt; one that does not fit waits (in arrival order) until earlier ones are done. What is kept
afterwards is the model's small input tensors, so peak memory is bounded by the budget whatever the number
of concurrent requests.

`give_back_memory` returns what a decoded image freed to the OS: glibc keeps freed chunks of this size
class in its per-thread heaps, so without it the server's resident memory stays at its peak for good.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PixelBudget:
    """`async with budget.hold(n):` runs the block once n pixels fit under `total` (FIFO)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        if n > self.total:  # Limits guarantees max_request_pixels <= total; this keeps a caller from waiting forever
            raise ValueError(f"{n} pixels can never fit a budget of {self.total}")
        if self._waiting or self.used + n > self.total:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append((n, future))
            try:
                await future  # _wake has added n to `used` for us
            except BaseException:  # cancelled (the client left) while waiting or just after being woken
                if future.done() and not future.cancelled():
                    self._release(n)
                else:  # still queued: _wake drops cancelled entries; let the next ones in now
                    future.cancel()
                    self._wake()
                raise
        else:
            self.used += n
        try:
            yield
        finally:
            self._release(n)

    def _release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            n, future = self._waiting[0]
            if future.done():  # its request was cancelled while waiting
                self._waiting.popleft()
                continue
            if self.used + n > self.total:
                return
            self._waiting.popleft()
            self.used += n
            future.set_result(None)


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its own policy
        return None


_TRIM = _malloc_trim()


def give_back_memory() -> None:
    """Return freed heap memory to the OS (glibc's malloc_trim; a no-op elsewhere)."""
    if _TRIM is not None:
        _TRIM(0)
