import pytest

from kanva.errors import KanvaError
from kanva.quickstart.steps import Step, StepRunner


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
