"""Token routing for a batch: one transformers streamer, one incremental decoder per row.

`model.generate(streamer=...)` calls `put(prompt_ids[B, L])` once, then `put(next_tokens[B])` every step,
for the whole batch at once. `BatchStreamer` splits each step by row and hands the token to that row's
`RowDecoder`, which turns it into text that is safe to send: never half of a multi-byte character (the
tokenizer decodes a lone UTF-8 lead byte as U+FFFD, so text ending in U+FFFD waits for the next token),
and never the start of what may become a stop string.

Rows finish on their own: at an end-of-sequence token, at their own `max_tokens`, at a stop string, or
when their client goes away. When every row has finished, `put` raises `BatchFinished` to end
`generate` early: the loop has no other exit that `Generator.generate` passes through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers.generation.streamers import BaseStreamer


class BatchFinished(Exception):
    """Raised from `put` when no row needs more tokens; the caller of `generate` catches it."""


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class RowDecoder:
    """Decodes one row's tokens into text increments, applying its stop strings and token budget."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str], max_tokens: int) -> None:
        self.decode = decode
        self.stop = list(stop)
        self.max_tokens = max_tokens
        self.ids: list[int] = []
        self.text = ""  # all text emitted so far
        self.finish_reason: str | None = None  # "stop" | "length" once finished

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> str:
        """Add a generated token (not end-of-sequence); return the newly safe text ("" if none)."""
        self.ids.append(token)
        full = self.decode(self.ids)
        hits = [at for s in self.stop if (at := full.find(s)) != -1]
        if hits:  # the earliest stop string wins; it and what follows are never sent
            return self._finish("stop", full[: min(hits)])
        if len(self.ids) >= self.max_tokens:
            return self._finish("length", full)
        if full.endswith("\ufffd"):
            return ""  # incomplete UTF-8 sequence: the next token completes it
        safe = len(full) - _held_back(full, self.stop)
        return self._emit(full[:safe])

    def end(self, reason: str) -> str:
        """Finish (end-of-sequence or the batch ran out of tokens); return the text still held back."""
        return self._finish(reason, self.decode(self.ids) if self.ids else "")

    def _emit(self, upto: str) -> str:
        # Decoding a longer sequence normally extends the previous text; if a tokenizer rewrote earlier text,
        # send only what follows the already-sent prefix rather than repeat or retract.
        if not upto.startswith(self.text) or len(upto) <= len(self.text):
            return ""
        new = upto[len(self.text) :]
        self.text = upto
        return new

    def _finish(self, reason: str, final: str) -> str:
        new = self._emit(final)
        self.finish_reason = reason
        return new


class BatchStreamer(BaseStreamer):
    """Routes each step's tokens to per-row decoders and reports text and finishes through callbacks.

    on_text(row, text), on_finish(row, reason, completion_tokens); is_cancelled(row) lets a
    row whose client left stop taking part; on_step() counts decoding steps. Runs on the generation thread.
    """

    def __init__(
        self,
        rows: Sequence[RowDecoder],
        eos_ids: set[int],
        on_text: Callable[[int, str], None],
        on_finish: Callable[[int, str, int], None],
        is_cancelled: Callable[[int], bool],
        on_step: Callable[[], None] = lambda: None,
    ) -> None:
        self.rows = list(rows)
        self.eos_ids = set(eos_ids)
        self.on_text = on_text
        self.on_finish = on_finish
        self.is_cancelled = is_cancelled
        self.on_step = on_step
        self.started = [False] * len(self.rows)  # whether the row has sent any text (for error handling)
        self._seen_prompt = False

    def put(self, value: Any) -> None:
        if not self._seen_prompt and value.dim() == 2:  # the prompt [B, L]: nothing to send
            self._seen_prompt = True
            return
        self.on_step()
        for r, token in enumerate(value.reshape(-1).tolist()):
            row = self.rows[r]
            if row.finished:
                continue
            if self.is_cancelled(r):
                row.finish_reason = "cancelled"
                self._report(r)
                continue
            if token in self.eos_ids:
                self._finish(r, "stop")
                continue
            text = row.push(token)
            if text:
                self.started[r] = True
                self.on_text(r, text)
            if row.finished:
                self._report(r)
        if all(row.finished for row in self.rows):
            raise BatchFinished()

    def end(self) -> None:
        """generate() ran to its max_new_tokens: rows still open end by length."""
        for r, row in enumerate(self.rows):
            if not row.finished:
                if self.is_cancelled(r):
                    row.finish_reason = "cancelled"
                    self._report(r)
                else:
                    self._finish(r, "length")

    def _finish(self, r: int, reason: str) -> None:
        text = self.rows[r].end(reason)
        if text:
            self.started[r] = True
            self.on_text(r, text)
        self._report(r)

    def _report(self, r: int) -> None:
        row = self.rows[r]
        self.on_finish(r, row.finish_reason or "stop", len(row.ids))
