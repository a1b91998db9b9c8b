"""The run directory: append-only JSONL files plus completion markers, so a killed run resumes exactly.

Files in DIR:
- `run.json`: the configuration of the run; resuming with a different one is refused.
- `provenance.jsonl`: one record per candidate (and per seed, and per finalize decision), appended per chunk.
- `units.jsonl`: the kept units and seed samples of each chunk (what finalize and `merge` read).
- `progress.jsonl`: one marker per finished chunk with the byte sizes of the two files after it, and a final
  marker once `evolved.json` is written.

A chunk's lines are appended and fsync'ed before its marker. On restart the files are cut back to the sizes
in the last marker, which removes whatever a kill left half-written, and the run continues with the next
chunk: no sample is lost or written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.prov = self.path / "provenance.jsonl"
        self.units = self.path / "units.jsonl"
        self.progress = self.path / "progress.jsonl"
        self.run_json = self.path / "run.json"

    # -- configuration -------------------------------------------------------------------------------------
    def start(self, config: dict[str, Any], overwrite: bool = False) -> bool:
        """Create or reopen the run; True when resuming. A different config in DIR is an error."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.run_json.is_file() and not overwrite:
            old = json.loads(self.run_json.read_text())
            if old != config:
                diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                raise KanvaError(f"{self.path}: holds a run with a different configuration (differs in {diff}); "
                                 "use another --out directory or --overwrite")
            return True
        for p in (self.prov, self.units, self.progress, self.path / "evolved.json"):
            p.unlink(missing_ok=True)
        self.run_json.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return False

    def config(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise KanvaError(f"{self.path}: no run.json (not a `kanva data evolve` output directory)")
        return json.loads(self.run_json.read_text())

    # -- markers ---------------------------------------------------------------------------------------------
    def markers(self) -> list[dict]:
        if not self.progress.is_file():
            return []
        out = []
        with self.progress.open(encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a marker cut by a kill: the chunk before it is not complete
        return out

    def recover(self) -> tuple[set[int], bool]:
        """Cut the files back to the last complete marker; returns (done chunk ids, finalized?)."""
        marks = self.markers()
        chunk_marks = [m for m in marks if "chunk" in m]
        final = any(m.get("final") for m in marks) and (self.path / "evolved.json").is_file()
        if final:
            return {m["chunk"] for m in chunk_marks}, True
        prov_size = chunk_marks[-1]["prov"] if chunk_marks else 0
        units_size = chunk_marks[-1]["units"] if chunk_marks else 0
        for p, size in ((self.prov, prov_size), (self.units, units_size)):
            if p.exists() and p.stat().st_size > size:
                with p.open("r+b") as f:
                    f.truncate(size)
            elif not p.exists():
                p.touch()
        # Rewrite the progress file with only the chunk markers (drops a cut marker or stale final marker).
        self.progress.write_text("".join(json.dumps(m) + "\n" for m in chunk_marks))
        return {m["chunk"] for m in chunk_marks}, False

    # -- appends ---------------------------------------------------------------------------------------------
    @staticmethod
    def _append(path: Path, lines: list[str]) -> int:
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def commit_chunk(self, chunk: int, prov_records: list[dict], unit_lines: list[dict], stats: dict) -> None:
        prov = self._append(self.prov, [json.dumps(r, ensure_ascii=False) + "\n" for r in prov_records])
        units = self._append(self.units, [json.dumps(u, ensure_ascii=False) + "\n" for u in unit_lines])
        self._append(self.progress, [json.dumps({"chunk": chunk, "prov": prov, "units": units, **stats}) + "\n"])

    def commit_final(self, prov_records: list[dict], stats: dict) -> None:
        prov = self._append(self.prov, [json.dumps(r, ensure_ascii=False) + "\n" for r in prov_records])
        self._append(self.progress, [json.dumps({"final": True, "prov": prov, **stats}) + "\n"])

    def read_units(self) -> list[dict]:
        if not self.units.is_file():
            return []
        with self.units.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
