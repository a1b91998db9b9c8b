"""A tiny make: named steps with inputs, a done-marker per step, and re-runs that skip finished work.

Each step writes `OUT/.steps/<name>.json` when it finishes: its seconds, its result summary and a
fingerprint of its config and of the markers of the steps it depends on. A step is redone when it
has no marker, when `--force` names it, or when its fingerprint changed (an upstream step was redone
or its config changed), so a re-run after an interruption continues where it stopped and never
reuses stale outputs. Steps that run long resume internally (training checkpoints, answer files): a step
with no marker (new, or interrupted) keeps its `outputs` so it can resume; a step that is *redone* (forced,
or its inputs changed) has its `outputs` removed first, so it neither resumes a run of another recipe nor
keeps answers of an older model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError


@dataclass
class Step:
    name: str
    run: Callable[[], dict[str, Any] | None]  # returns a JSON-able summary
    after: list[str] = field(default_factory=list)  # steps whose outputs this one reads
    config: Any = None  # anything JSON-able that decides the output (part of the fingerprint)
    help: str = ""
    outputs: list[Path] = field(default_factory=list)  # removed before the step is redone (not when resumed)


class StepRunner:
    def __init__(self, out: Path, steps: list[Step], log: Callable[[str], None] = print):
        self.out = Path(out)
        self.steps = steps
        self.by_name = {s.name: s for s in steps}
        self.log = log
        for s in steps:
            for dep in s.after:
                if dep not in self.by_name:
                    raise KanvaError(f"step {s.name!r} depends on unknown step {dep!r}")
        (self.out / ".steps").mkdir(parents=True, exist_ok=True)

    def marker(self, name: str) -> Path:
        return self.out / ".steps" / f"{name}.json"

    def done(self, name: str) -> dict | None:
        p = self.marker(name)
        return json.loads(p.read_text()) if p.is_file() else None

    def fingerprint(self, step: Step) -> str:
        # An upstream step that was redone has a new `finished` stamp, so everything after it is redone too.
        parts = {"config": step.config, "after": {d: (self.done(d) or {}).get("finished") for d in step.after}}
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def run(self, force: list[str] | None = None, until: str | None = None) -> dict[str, dict]:
        force = set(force or [])
        unknown = force - set(self.by_name) - {"all"}
        if unknown:
            raise KanvaError(f"--force: unknown step(s) {sorted(unknown)}; steps: {[s.name for s in self.steps]}")
        if until is not None and until not in self.by_name:
            raise KanvaError(f"--until: unknown step {until!r}; steps: {[s.name for s in self.steps]}")
        results = {}
        total = len(self.steps)
        for i, step in enumerate(self.steps, 1):
            fp = self.fingerprint(step)
            prev = self.done(step.name)
            if prev and prev.get("fingerprint") == fp and step.name not in force and "all" not in force:
                self.log(f"[{i}/{total}] {step.name}: done ({prev['seconds']:.0f} s earlier), skipped")
                results[step.name] = prev
            else:
                why = "forced" if (step.name in force or "all" in force) else ("inputs changed" if prev else "new")
                self.log(f"[{i}/{total}] {step.name}: running ({why}) {step.help}")
                self.marker(step.name).unlink(missing_ok=True)
                if why != "new":  # redone: what the previous run left is stale, and resuming it would be wrong
                    for out in map(Path, step.outputs):
                        if out.is_dir():
                            shutil.rmtree(out)
                        else:
                            out.unlink(missing_ok=True)
                t0 = time.time()
                try:
                    summary = step.run() or {}
                except BaseException:
                    # Its outputs stay, so a plain re-run resumes it; --force starts it over (e.g. after the
                    # inputs it had started from were fixed by hand).
                    self.log(f"[{i}/{total}] {step.name}: failed after {time.time() - t0:.0f} s; run the same command "
                             f"again to resume it, or add --force {step.name} to start it over")
                    raise
                rec = {"step": step.name, "seconds": round(time.time() - t0, 1), "finished": time.time(),
                       "fingerprint": fp, "summary": summary}
                tmp = self.marker(step.name).with_suffix(".tmp")
                tmp.write_text(json.dumps(rec, indent=1, default=str))
                tmp.replace(self.marker(step.name))  # atomic: a marker is either whole or absent
                self.log(f"[{i}/{total}] {step.name}: finished in {rec['seconds']:.0f} s")
                results[step.name] = rec
            if step.name == until:
                break
        return results
