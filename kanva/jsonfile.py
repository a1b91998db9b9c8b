"""Reading one JSON file, or one JSON-lines file, with errors a user can act on.

Every file Kanva reads that a person may have written or moved (COCO annotations, a knowledge base, a label
file, a results file, a benchmark's questions) goes through here, so a missing file, bad JSON or text that is
not UTF-8 always gives the same `KanvaError` naming the file and the line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from kanva.errors import KanvaError


def read_json(path: str | Path, what: str = "file", hint: str = "") -> Any:
    """One JSON document. `what` names the file's role in the error; `hint` says where the file comes from."""
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such {what}{f' ({hint})' if hint else ''}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise KanvaError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise KanvaError(f"{path}: not UTF-8 text ({e})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, object) for each non-blank line; bad JSON or a non-object names file:line."""
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise KanvaError(f"{path}:{n}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise KanvaError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            yield n, obj
