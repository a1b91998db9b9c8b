"""A disk cache of LLM replies keyed by a hash of the request: reruns and resumed runs ask nothing twice.

One small JSON file per reply under `dir/ab/abcdef....json`, written to a temporary name and renamed, so a
killed run never leaves a half-written entry. Only successful replies are cached: a timeout is retried next run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class DiskCache:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        p = self._path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))["text"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError, UnicodeDecodeError):
            return None

    def put(self, key: str, text: str) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"text": text}, f, ensure_ascii=False)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
