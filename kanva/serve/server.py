"""Running the app with uvicorn: in the foreground (`kanva serve`) or on a thread (tests, benchmarks)."""

from __future__ import annotations

import copy
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from kanva.errors import KanvaError


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    # The server's own messages (kanva.serve: a failed generation, a client that left mid-upload) print
    # like uvicorn's, at the same --log-level.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["kanva.serve"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    # timeout_graceful_shutdown: an open stream must not keep Ctrl-C from stopping the server.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=log_config,
                          timeout_graceful_shutdown=5)


class ServerThread:
    """`with ServerThread(app) as url:` serves `app` on 127.0.0.1:<free port> until the block ends."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning"):
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn_config(app, self.host, self.port, log_level))
        self.thread = threading.Thread(target=self.server.run, name="kanva-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise KanvaError(f"server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
