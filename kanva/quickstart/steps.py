"""A tiny make: named steps with inputs, a done-marker per step, and re-runs that skip finished work.

Each step writes `OUT/.steps/<name>.json` when it finishes: its seconds, its result summary and a
fingerprint of its config and of the markers of the steps it depends on. A step is redone when it
has no marker, when `--force` names it, or when its fingerprint changed (an upstream step was redone
or its config changed), so a re-run after an interruption continues where it stopped and never
reuses stale outputs. Steps that run long resume internally (training checkpoints, answer files): a step
with no marker (new, or interrupted) keeps its `outputs` so it can resume; a step that is *redone* (forced,
or its inputs changed) has its `outputs` removed first, so it neither resumes a run of another recipe nor
keeps answers of an older model.

Each marker also records the step's CPU time (its process's threads and the child processes it waited for)
and its share of the machine's cores over the step's wall time, for the report's time table.

`run(jobs=N, run_one=...)` runs up to N steps at once: a step starts as soon as every step it depends on has
finished, and `run_one(name, forced)` runs it (the quickstart runs each in a process of its own). A step's
output never depends on N: each runs the same code on the same inputs; only when it runs changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
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
        # Paths under OUT are written relative to it, so a run folder that moved stays current.
        parts = {"config": step.config, "after": {d: (self.done(d) or {}).get("finished") for d in step.after}}
        text = json.dumps(parts, sort_keys=True, default=str).replace(str(self.out), "OUT")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _why(self, step: Step, force: set[str]) -> str | None:
        """Why `step` must run now (None: its marker is current)."""
        prev = self.done(step.name)
        if prev and prev.get("fingerprint") == self.fingerprint(step) and step.name not in force and "all" not in force:
            return None
        return "forced" if (step.name in force or "all" in force) else ("inputs changed" if prev else "new")

    def plan(self, force: list[str] | None = None) -> dict[str, str]:
        """What a run would do with each step: "done" (skipped), or why it would run ("new", "inputs
        changed", "forced"); a step after one that runs runs too (its input gets a new `finished` stamp)."""
        force_set = set(force or [])
        self._check(force_set, None)
        out: dict[str, str] = {}
        for s in self.steps:
            why = self._why(s, force_set)
            if why is None and any(out[d] != "done" for d in s.after):
                why = "inputs changed"
            out[s.name] = why or "done"
        return out

    def _check(self, force: set[str], until: str | None, only: str | None = None) -> None:
        unknown = force - set(self.by_name) - {"all"}
        if unknown:
            raise KanvaError(f"--force: unknown step(s) {sorted(unknown)}; steps: {[s.name for s in self.steps]}")
        for flag, name in (("--until", until), ("--only", only)):
            if name is not None and name not in self.by_name:
                raise KanvaError(f"{flag}: unknown step {name!r}; steps: {[s.name for s in self.steps]}")

    def run_step(self, step: Step, why: str, label: str) -> dict:
        """Run one step now (its inputs are done): clear what a redo must not resume, run it, write its marker."""
        self.log(f"{label} {step.name}: running ({why}) {step.help}")
        self.marker(step.name).unlink(missing_ok=True)
        if why != "new":  # redone: what the previous run left is stale, and resuming it would be wrong
            for out in map(Path, step.outputs):
                if out.is_dir():
                    shutil.rmtree(out)
                else:
                    out.unlink(missing_ok=True)
        fp = self.fingerprint(step)
        t0, cpu0 = time.time(), _cpu_seconds()
        try:
            summary = step.run() or {}
        except BaseException:
            # Its outputs stay, so a plain re-run resumes it; --force starts it over (e.g. after the
            # inputs it had started from were fixed by hand).
            self.log(f"{label} {step.name}: failed after {time.time() - t0:.0f} s; run the same command "
                     f"again to resume it, or add --force {step.name} to start it over")
            raise
        wall, cpu = time.time() - t0, _cpu_seconds() - cpu0
        rec = {"step": step.name, "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
               "cpu_share": round(cpu / max(wall, 1e-6) / (os.cpu_count() or 1), 3), "finished": time.time(),
               "fingerprint": fp, "summary": summary}
        tmp = self.marker(step.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1, default=str))
        tmp.replace(self.marker(step.name))  # atomic: a marker is either whole or absent
        self.log(f"{label} {step.name}: finished in {rec['seconds']:.0f} s")
        return rec

    def run(self, force: list[str] | None = None, until: str | None = None, only: str | None = None,
            jobs: int = 1, run_one: Callable[[str, bool], None] | None = None) -> dict[str, dict]:
        """Run what is not current, in order; `only` runs that one step (its inputs must be done); with
        `jobs` > 1 and `run_one`, independent steps run concurrently (see the module docstring)."""
        force = set(force or [])
        self._check(force, until, only)
        if only is not None:
            step = self.by_name[only]
            why = self._why(step, force)
            return {only: self.done(only) if why is None else self.run_step(step, why, f"[{only}]")}
        names = [s.name for s in self.steps]
        wanted = self.steps[: names.index(until) + 1] if until is not None else list(self.steps)
        if jobs > 1 and run_one is not None:
            return self._run_parallel(wanted, force, jobs, run_one)
        results = {}
        total = len(self.steps)
        for i, step in enumerate(wanted, 1):
            why = self._why(step, force)
            if why is None:
                prev = self.done(step.name)
                self.log(f"[{i}/{total}] {step.name}: done ({prev['seconds']:.0f} s earlier), skipped")
                results[step.name] = prev
            else:
                results[step.name] = self.run_step(step, why, f"[{i}/{total}]")
        return results

    def _run_parallel(self, wanted: list[Step], force: set[str], jobs: int,
                      run_one: Callable[[str, bool], None]) -> dict[str, dict]:
        results: dict[str, dict] = {}
        pending = list(wanted)
        finished: set[str] = set()
        running: dict = {}
        failed: list[tuple[str, BaseException]] = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending or running:
                # start (or skip) every step whose inputs are done, while a slot is free
                while not failed and (step := _first_ready(pending, finished, len(running) < jobs)) is not None:
                    pending.remove(step)
                    why = self._why(step, force)
                    if why is None:  # current: skipped (the steps after it may now be ready)
                        results[step.name] = self.done(step.name)
                        finished.add(step.name)
                        self.log(f"{step.name}: done ({results[step.name]['seconds']:.0f} s earlier), skipped")
                        continue
                    self.log(f"{step.name}: started ({why}) {step.help}")
                    running[pool.submit(run_one, step.name, why == "forced")] = step
                if not running:
                    break  # nothing left that can start (a failure stopped the rest)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    step = running.pop(fut)
                    try:
                        fut.result()
                        results[step.name] = self.done(step.name) or {}
                        finished.add(step.name)
                        self.log(f"{step.name}: finished in {results[step.name].get('seconds', 0):.0f} s")
                    except BaseException as e:  # the others run to their end; nothing new starts
                        failed.append((step.name, e))
                        self.log(f"{step.name}: failed ({e}); run the same command again to resume it")
        if failed:
            name, err = failed[0]
            raise KanvaError(f"step {name} failed: {err}") from err
        return results


def wall_seconds(markers: dict[str, dict]) -> float:
    """Wall clock of the steps whose done-markers are given: the length of the union of their [start, finish]
    intervals. With `--jobs N` steps overlap and count once, so this is less than the sum of their seconds; a pause
    when no step ran (a run interrupted and resumed in a later session) does not count, nor do the moments
    between one step's finish and the next one's start."""
    spans = sorted((m["finished"] - m["seconds"], m["finished"]) for m in markers.values())
    total, end = 0.0, float("-inf")
    for start, finish in spans:
        if finish > end:
            total += finish - max(start, end)
            end = finish
    return total


def _first_ready(pending: list[Step], finished: set[str], slot_free: bool) -> Step | None:
    """The first pending step whose inputs have all finished, if a slot is free (steps are listed in
    dependency order, so one a skip makes ready comes after it)."""
    if not slot_free:
        return None
    return next((s for s in pending if all(d in finished for d in s.after)), None)


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of the child processes it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
