"""The single generation worker and its batching queue.

Requests are handled on the asyncio loop, but generation is one blocking `model.generate` call, so one
thread owns the model. It takes the oldest queued request, waits while other requests are still arriving
(being read and decoded), at most until that request is `batch_wait_s` old or `max_batch_size` compatible
requests are queued, and generates up to `max_batch_size` of them together: on a
CPU or GPU one batched forward pass costs far less than B separate ones. Requests batch together only
when they sample the same way (greedy with greedy; same temperature/top_p otherwise; a seeded sampled
request runs alone, so its seed reproduces its answer). Per-request max_tokens and stop strings are
applied per row by `BatchStreamer`, so they need not match.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kanva.errors import KanvaError
from kanva.serve.errors import APIError
from kanva.serve.stream import BatchFinished, BatchStreamer, RowDecoder

log = logging.getLogger("kanva.serve")

Event = tuple  # ("text", str) | ("finish", reason, prompt_tokens, completion_tokens) | ("error", APIError)


class Engine(Protocol):
    """What the worker needs from a model: `kanva.serve.engine.Engine` wraps `kanva.infer.Generator`."""

    eos_ids: set[int]
    context_length: int
    max_frames: int | None  # frames per video (None: the model takes no video)

    def decode(self, ids: list[int]) -> str: ...

    def generate(self, prompts: list[tuple[list[int], dict[str, Any]]], **kwargs: Any) -> list[str]: ...


@dataclass(eq=False)
class Job:
    """One request's work; `send` delivers events to the request (thread-safe, set by the app).

    The prompt is already encoded (ids, the model's vision inputs): a queued request holds the model's small
    input, never decoded images, and anything wrong with its messages or images failed before it got here."""

    prompt: tuple[list[int], dict[str, Any]]
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    send: Callable[[Event], None]
    arrived: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)
    closed: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt[0])

    @property
    def n_images(self) -> int:
        pixels = self.prompt[1].get("pixel_values")
        return 0 if pixels is None else len(pixels)

    def batch_key(self) -> tuple:
        if self.temperature == 0.0:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", id(self))
        return ("sample", self.temperature, self.top_p)


@dataclass
class Stats:
    """Counters shown at GET /v1/stats (the benchmark and tests read batch sizes from here)."""

    batches: int = 0
    completed: int = 0
    cancelled: int = 0
    errors: int = 0
    images: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    decode_steps: int = 0  # batched forward passes after the prompt; stops growing when generation stops
    generate_s: float = 0.0  # wall time inside Generator.generate (busy time of the worker)
    batch_sizes: Counter = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "errors": self.errors,
            "images": self.images,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "decode_steps": self.decode_steps,
            "generate_s": round(self.generate_s, 3),
            "max_batch_size_seen": max(self.batch_sizes, default=0),
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }


class BatchWorker:
    """Owns the engine; `submit` from any thread, results arrive through each Job's `send`."""

    def __init__(self, engine: Engine, max_batch_size: int = 16, batch_wait_s: float = 0.01, max_pending: int = 256):
        if max_batch_size < 1:
            raise KanvaError(f"--max-batch-size must be >= 1, got {max_batch_size}")
        if batch_wait_s < 0:
            raise KanvaError(f"--batch-wait-ms must be >= 0, got {batch_wait_s * 1000:g}")
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.max_pending = max_pending
        self.stats = Stats()
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._open = 0  # submitted and not closed: queued or generating
        self._incoming = 0  # requests being read and decoded, not yet submitted (see `arriving`)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._current: list[Job] = []  # the batch being generated
        # Seeds for sampled requests that bring none: fresh per batch, so two such requests differ
        # (Generator forks the RNG per call, so without a seed every call would sample alike).
        self._seeds = random.Random()

    # -- called from the server ------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="kanva-generate", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the batch in progress, fail what is still queued, and end the thread."""
        with self._cond:
            self._stopping = True
            for job in self._current:  # the streamer ends the batch at its next step
                job.cancelled.set()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._cond:
            while self._queue:
                job = self._queue.popleft()
                self._send(job, ("error", APIError(503, "server is shutting down", type="server_error")))
                self._close(job)

    @contextmanager
    def arriving(self) -> Iterator[None]:
        """Wrap a request's reading, validation and image decoding (and its `submit`).

        While requests are arriving, the worker waits for them (up to batch_wait_s) instead of starting a
        batch without them; when none are, it starts at once, so a lone request never waits.
        """
        with self._cond:
            self._incoming += 1
        try:
            yield
        finally:
            with self._cond:
                self._incoming -= 1
                self._cond.notify_all()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping or self._thread is None:
                raise APIError(503, "server is not accepting requests (shutting down)", type="server_error")
            if self._open >= self.max_pending:
                raise APIError(
                    429,
                    f"max_pending exceeded: {self._open} requests are queued or generating, the limit is "
                    f"{self.max_pending} (server flag --max-pending); retry later",
                    type="rate_limit_error",
                    code="max_pending_exceeded",
                )
            self._open += 1
            self._queue.append(job)
            self.stats.images += job.n_images
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """The client went away: drop a queued job now; a generating row stops at the next step."""
        job.cancelled.set()
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
                self.stats.cancelled += 1
                self._close(job)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {
                **self.stats.snapshot(),
                "queued": len(self._queue),
                "open": self._open,
                "max_batch_size": self.max_batch_size,
                "batch_wait_ms": self.batch_wait_s * 1000,
            }

    # -- the worker thread -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            head = self._queue[0]
            key = head.batch_key()
            # Wait (only while more requests are arriving) until the head is batch_wait_s old: from its
            # arrival, not from now, since under load the head has already waited for the previous batch.
            deadline = head.arrived + self.batch_wait_s
            while not self._stopping and head in self._queue:
                ready = sum(1 for j in self._queue if j.batch_key() == key)
                left = deadline - time.monotonic()
                if ready >= self.max_batch_size or left <= 0 or self._incoming == 0:
                    break
                self._cond.wait(left)
            batch = [j for j in self._queue if j.batch_key() == key][: self.max_batch_size]
            for j in batch:
                self._queue.remove(j)
            if batch:
                self.stats.batches += 1
                self.stats.batch_sizes[len(batch)] += 1
            self._current = batch
            return batch

    def _run(self, batch: list[Job]) -> None:
        rows = [RowDecoder(self.engine.decode, j.stop, j.max_tokens) for j in batch]

        def on_finish(r: int, reason: str, completion_tokens: int) -> None:
            job = batch[r]
            with self._cond:
                if reason == "cancelled":
                    self.stats.cancelled += 1
                else:
                    self.stats.completed += 1
                    self.stats.prompt_tokens += job.prompt_tokens
                    self.stats.completion_tokens += completion_tokens
                if reason != "cancelled":
                    self._send(job, ("finish", reason, job.prompt_tokens, completion_tokens))
                self._close(job)

        streamer = BatchStreamer(
            rows,
            eos_ids=self.engine.eos_ids,
            on_text=lambda r, text: self._send(batch[r], ("text", text)),
            on_finish=on_finish,
            is_cancelled=lambda r: batch[r].cancelled.is_set(),
            on_step=self._count_step,
        )
        first = batch[0]
        seed = None  # greedy: no seed (a batch shares the first job's, and greedy rows never asked for one)
        if first.temperature > 0:
            seed = first.seed if first.seed is not None else self._seeds.randrange(2**63)
        started = time.perf_counter()
        try:
            self.engine.generate(
                [j.prompt for j in batch],
                max_new_tokens=max(j.max_tokens for j in batch),
                temperature=first.temperature,
                top_p=first.top_p,
                stop=None,  # per-row stop strings are applied by the streamer
                seed=seed,
                streamer=streamer,
            )
        except BatchFinished:
            pass
        except Exception as e:  # noqa: BLE001 - one bad batch must not end the worker
            self._add_time(started)
            self._failed(batch, streamer, e)
            return
        self._add_time(started)
        streamer.end()  # idempotent: closes rows generate() left open

    def _failed(self, batch: list[Job], streamer: BatchStreamer, e: Exception) -> None:
        open_rows = [r for r, j in enumerate(batch) if not j.closed]
        if len(batch) > 1:
            # Generation usually fails on one request's input (e.g. a prompt longer than the context). Rows that
            # have sent nothing yet run again on their own, so only the culprit gets the error.
            retry = [batch[r] for r in open_rows if not streamer.started[r]]
            for job in retry:
                if job.cancelled.is_set():
                    with self._cond:
                        self.stats.cancelled += 1
                        self._close(job)
                else:
                    with self._cond:
                        self.stats.batches += 1
                        self.stats.batch_sizes[1] += 1
                    self._run([job])
            open_rows = [r for r in open_rows if streamer.started[r]]
        if isinstance(e, KanvaError):
            err = APIError(400, str(e))
        else:
            log.error("generation failed: %s", "".join(traceback.format_exception(e)))
            err = APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error")
        for r in open_rows:
            job = batch[r]
            with self._cond:
                self.stats.errors += 1
                self._send(job, ("error", err))
                self._close(job)

    def _add_time(self, started: float) -> None:
        with self._cond:
            self.stats.generate_s += time.perf_counter() - started

    def _count_step(self) -> None:
        with self._cond:
            self.stats.decode_steps += 1

    def _send(self, job: Job, event: Event) -> None:
        if job.cancelled.is_set():
            return
        try:
            job.send(event)
        except RuntimeError:  # the request's event loop is gone (server shutting down)
            job.cancelled.set()

    def _close(self, job: Job) -> None:
        """Free the job's slot (once). Caller holds the lock or is on the worker thread."""
        if not job.closed:
            job.closed = True
            self._open -= 1
