import threading
import time

import pytest

from kanva.errors import KanvaError
from kanva.quickstart.steps import Step, StepRunner, wall_seconds


def _runner(tmp_path, calls, cfg_b=1):
    def mk(name):
        return lambda: calls.append(name) or {"name": name}

    return StepRunner(tmp_path, [
        Step("a", mk("a")),
        Step("b", mk("b"), after=["a"], config={"x": cfg_b}),
        Step("c", mk("c"), after=["b"]),
    ], log=lambda s: None)


def test_rerun_skips_finished_steps(tmp_path):
    calls = []
    _runner(tmp_path, calls).run()
    _runner(tmp_path, calls).run()
    assert calls == ["a", "b", "c"]


def test_force_redoes_the_step_and_what_depends_on_it(tmp_path):
    calls = []
    _runner(tmp_path, calls).run()
    _runner(tmp_path, calls).run(force=["b"])
    assert calls == ["a", "b", "c", "b", "c"]


def test_config_change_redoes_downstream(tmp_path):
    calls = []
    _runner(tmp_path, calls).run()
    _runner(tmp_path, calls, cfg_b=2).run()
    assert calls == ["a", "b", "c", "b", "c"]


def test_interrupted_step_is_redone(tmp_path):
    calls = []

    def boom():
        raise RuntimeError("killed")

    lines = []
    r = StepRunner(tmp_path, [Step("a", lambda: calls.append("a")), Step("b", boom, after=["a"])], log=lines.append)
    with pytest.raises(RuntimeError):
        r.run()
    assert "b: failed" in lines[-1] and "--force b" in lines[-1]  # how to resume, and how to start over
    assert r.done("a") and not r.done("b")
    r2 = StepRunner(tmp_path, [Step("a", lambda: calls.append("a")), Step("b", lambda: calls.append("b"), after=["a"])],
                    log=lambda s: None)
    r2.run()
    assert calls == ["a", "b"]


def test_unknown_force_is_an_error(tmp_path):
    with pytest.raises(KanvaError, match="unknown step"):
        _runner(tmp_path, []).run(force=["nope"])


def test_redone_step_starts_clean_but_an_interrupted_one_resumes(tmp_path):
    out = tmp_path / "outputs"
    seen = []

    def work():
        seen.append(sorted(x.name for x in out.iterdir()) if out.is_dir() else None)
        out.mkdir(exist_ok=True)
        (out / "checkpoint").write_text("x")
        return {}

    def runner():
        return StepRunner(tmp_path / "run", [Step("train", work, outputs=[out])], log=lambda s: None)

    runner().run()
    runner().run(force=["train"])  # redone: the earlier checkpoint is gone before it runs
    (tmp_path / "run" / ".steps" / "train.json").unlink()  # as if interrupted before its marker
    runner().run()  # no marker: resumes, and sees what the interrupted run left
    assert seen == [None, None, ["checkpoint"]]


def test_markers_record_cpu_time_and_share(tmp_path):
    def spin():
        t = time.process_time()
        while time.process_time() - t < 0.05:
            pass

    StepRunner(tmp_path, [Step("a", spin)], log=lambda s: None).run()
    rec = StepRunner(tmp_path, [Step("a", spin)], log=lambda s: None).done("a")
    assert rec["cpu_seconds"] >= 0.0 and 0.0 < rec["cpu_share"] <= 1.0


def test_jobs_run_independent_steps_together_and_keep_the_order_of_dependent_ones(tmp_path):
    barrier = threading.Barrier(2, timeout=20)  # a and b must be running at the same time to pass it
    order = []

    def together(name):
        def run():
            barrier.wait()
            order.append(name)
        return run

    def steps():
        return [Step("a", together("a")), Step("b", together("b")),
                Step("c", lambda: order.append("c"), after=["a", "b"]),
                Step("d", lambda: order.append("d"))]

    runner = StepRunner(tmp_path, steps(), log=lambda s: None)

    def run_one(name, forced):  # as the quickstart's child process would: a runner of its own, one step
        StepRunner(tmp_path, steps(), log=lambda s: None).run(only=name, force=[name] if forced else None)

    results = runner.run(jobs=2, run_one=run_one)
    assert set(results) == {"a", "b", "c", "d"} and order.index("c") > max(order.index("a"), order.index("b"))
    # Up to date now: nothing runs again; a forced step and what reads it run again.
    order.clear()
    runner.run(jobs=2, run_one=run_one, force=["c"])
    assert order == ["c"]

    def broken(name, forced):
        raise RuntimeError(f"{name} broke")

    with pytest.raises(KanvaError, match="d broke"):
        StepRunner(tmp_path, steps(), log=lambda s: None).run(jobs=2, run_one=broken, force=["d"])


def test_jobs_cap_the_steps_running_at_once_and_skips_free_the_steps_after_them(tmp_path):
    now, most, lock = [0], [0], threading.Lock()

    def step(name, after=()):
        def run():
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            time.sleep(0.05)
            with lock:
                now[0] -= 1
        return Step(name, run, after=list(after))

    def steps():
        return [step("a"), step("b", ["a"]), step("c"), step("d", ["c"]), step("e"), step("f")]

    def run_one(name, forced):
        StepRunner(tmp_path, steps(), log=lambda s: None).run(only=name, force=[name] if forced else None)

    StepRunner(tmp_path, steps(), log=lambda s: None).run(only="a")
    StepRunner(tmp_path, steps(), log=lambda s: None).run(only="c")
    log: list[str] = []
    StepRunner(tmp_path, steps(), log=log.append).run(jobs=2, run_one=run_one)
    assert most[0] == 2  # four steps to run, never more than two at once
    # a and c are current: skipped where they stand, so b and d (which read them) start first
    assert [line.split(":")[0] for line in log[:4]] == ["a", "b", "c", "d"]
    assert "skipped" in log[0] and "started" in log[1] and "skipped" in log[2] and "started" in log[3]
    assert sum("finished" in line for line in log) == 4


def test_wall_seconds_counts_overlapping_steps_once_and_no_pause():
    """Two steps that overlap (`--jobs 2`) count once, not the sum of their times; a pause when nothing ran (a run
    resumed later) does not count."""
    markers = {"a": {"seconds": 10.0, "finished": 110.0}, "b": {"seconds": 30.0, "finished": 125.0},
               "c": {"seconds": 5.0, "finished": 140.0}}  # a: 100-110 inside b: 95-125; c: 135-140
    assert wall_seconds(markers) == 35.0
    markers["d"] = {"seconds": 20.0, "finished": 5140.0}  # resumed much later: 5120-5140
    assert wall_seconds(markers) == 55.0
    assert wall_seconds({}) == 0.0


def test_plan_says_what_a_run_would_do(tmp_path):
    calls = []
    assert _runner(tmp_path, calls).plan() == {"a": "new", "b": "new", "c": "new"}
    _runner(tmp_path, calls).run()
    assert _runner(tmp_path, calls).plan() == {"a": "done", "b": "done", "c": "done"}
    # c's own marker is current, but it runs after b, which would run again
    assert _runner(tmp_path, calls, cfg_b=2).plan() == {"a": "done", "b": "inputs changed", "c": "inputs changed"}
    assert _runner(tmp_path, calls).plan(force=["a"]) == {"a": "forced", "b": "inputs changed", "c": "inputs changed"}
    assert calls == ["a", "b", "c"]  # planning runs nothing
