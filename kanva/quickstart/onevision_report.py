"""The OneVision curriculum's report: the single-image model against the OneVision model on single-image,
multi-image and video benchmarks, and the knowledge-aware multi-image and video tasks per arm.

Every figure carries a 95% bootstrap interval: MME over images, POPE and the multiple-choice sets over
questions, MMBench over circular groups (kanva/quickstart/scores.py, kanva/eval/bootstrap.py); differences of
two models are paired (the same resampled questions for both).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kanva.eval.answers import load_answers
from kanva.eval.bootstrap import N_BOOT, accuracy_ci, paired_delta_ci
from kanva.eval.mme import parse_yes_no
from kanva.eval.report import markdown_page
from kanva.quickstart.arms import ARMS, HEADLINE
from kanva.quickstart.report import _fmt_ci, score_models
from kanva.quickstart.scores import pair_key
from kanva.quickstart.steps import wall_seconds

BENCH_NAMES = {"muirbench": "multi-image MC (MUIRBench-style)", "mvbench": "video MC (MVBench-style)"}


def sequence_outcomes(q, model: str, bench: str) -> tuple[list[str], list[str], list[bool]]:
    """(task, kind, right?) per question of the run's multiple-choice benchmark, in file order; a missing
    answer is wrong."""
    from kanva.eval.multichoice import outcomes
    from kanva.eval.muirbench import load_muirbench
    from kanva.eval.mvbench import load_mvbench

    data = (load_muirbench if bench == "muirbench" else load_mvbench)(q.bench_data(bench)[0])
    path = q.answers(model, bench)
    _, _, right, _ = outcomes(data, load_answers(path) if path.is_file() else [])
    return [x.task for x in data.questions], [x.kind for x in data.questions], right


def yes_share(answers: list) -> float:
    """The share of answers that MME's official parsing reads as "yes" (nan without answers)."""
    return sum(parse_yes_no(a.text) == "yes" for a in answers) / len(answers) if answers else float("nan")


def _acc(right: list[bool], seed: int) -> tuple[float, tuple[float, float]]:
    return (100 * sum(right) / len(right) if right else float("nan")), accuracy_ci(right, seed=seed)


def _delta(a: list[bool], b: list[bool], seed: int) -> str:
    d, ci = paired_delta_ci(a, b, seed=seed)
    return _fmt_ci(d, ci)


def write_report(q) -> dict[str, Path]:
    """q.report_dir/{report.md, report.html, results.json}."""
    cfg, seed = q.cfg, q.cfg.seed
    out = q.report_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    models = q.models()
    si, ov = models[0], q.headline_model()
    single = score_models(q, {m: m for m in q.single_image_benchmarked()}, "test", pairs=[(ov, si)])
    seq = {b: {m: sequence_outcomes(q, m, b) for m in models} for b in BENCH_NAMES}
    results: dict = {"models": models, "single_image": {k: v for k, v in single.items() if k != "answers"},
                     "sequences": {}}

    others = ", ".join(f"`{m}`" for m in list(q.si_models())[1:])
    model = (f"the arm's own single-image model (the same stage on the arm's single-image data; {others} trained, "
             "not evaluated)" if q.ov.per_arm_single_image else "that model")
    data = {  # (per-arm curricula, one replay arm) -> what the OneVision stage reads
        (True, False): "the arm's single-image, multi-image and video data, all",
        (True, True): "the arm's multi-image and video data",
        (False, False): "single-image, multi-image and video data, the multi-image and video data",
        (False, True): "multi-image and video data, the multi-image and video data",
    }[q.ov.per_arm_single_image, bool(q.ov.replay_arm)]
    ov_is = (f"{model} after the OneVision stage on {data} evolved with (`evolved`) or without (`evolved-noknow`) "
             "the knowledge base")
    if q.ov.replay_arm:
        ov_is += f", with {ARMS[q.ov.replay_arm].label} single-image data replayed in both arms"
    seq_only = [m for m in models if m not in q.single_image_benchmarked()]
    if seq_only:
        ov_is += f" ({', '.join(f'`{m}`' for m in seq_only)} answers only the multi-image and video benchmarks)"
    md = ["# Kanva OneVision curriculum report", "",
          f"Config `{cfg.source}`, preset `{cfg.preset}`, seed {seed}. `{si}`: the single-image stage (reading over "
          f"the scene text of {ARMS[q.ov.si_arm].label} single-image data); `onevision-ARM`: {ov_is}. "
          "Intervals: 95% bootstrap "
          f"({cfg.eval.bootstrap} resamples for the single-image sets, {N_BOOT:,} for the multiple-choice sets); "
          "differences are paired.", "",
          f"## Single-image model vs OneVision model (`{si}` vs `{ov}`)", "",
          f"| benchmark | {si} | {ov} | {ov} - {si} |", "|---|---|---|---|"]
    mme = single.get("mme")
    if mme:
        d = mme["perception_deltas"][pair_key(ov, si)]
        # the share of "yes" answers shows a model that answers one word to every question (the OneVision stage
        # can tip a single-image model into that), as POPE's yes-ratio does
        yes = {m: yes_share(single["answers"][m]["mme"]) for m in (si, ov)}
        results["single_image"]["mme_yes_share"] = yes
        md.append(f"| MME-format perception (of {mme['perception_max']}; yes-share) | "
                  f"{_fmt_ci(mme['perception'][si], mme['perception_ci'][si])} ({yes[si]:.2f}) | "
                  f"{_fmt_ci(mme['perception'][ov], mme['perception_ci'][ov])} ({yes[ov]:.2f}) | "
                  f"{_fmt_ci(d['delta'], d['ci'])} |")
    if "pope" in single:
        p = single["pope"]
        md.append(f"| POPE mean F1 (yes-ratio) | {_fmt_ci(p['mean_f1'][si], p['mean_f1_ci'][si], 3)} "
                  f"({p['yes_ratio'][si]:.2f}) | {_fmt_ci(p['mean_f1'][ov], p['mean_f1_ci'][ov], 3)} "
                  f"({p['yes_ratio'][ov]:.2f}) | |")
    if "mmbench" in single:
        b = single["mmbench"]
        md.append(f"| MMBench circular | {_fmt_ci(b[si]['circular'], b[si]['circular_ci'])} | "
                  f"{_fmt_ci(b[ov]['circular'], b[ov]['circular_ci'])} | |")
    for bench, name in BENCH_NAMES.items():
        _, _, r_si = seq[bench][si]
        _, _, r_ov = seq[bench][ov]
        md.append(f"| {name}, {len(r_si)} questions | {_fmt_ci(*_acc(r_si, seed))} | {_fmt_ci(*_acc(r_ov, seed))} | "
                  f"{_delta(r_ov, r_si, seed)} |")
    md.append("")

    md += ["## Multi-image and video tasks per model", ""]
    for bench, name in BENCH_NAMES.items():
        tasks = seq[bench][models[0]][0]
        names = sorted(set(tasks), key=tasks.index)
        md += [f"### {name}", "", "| task | questions | " + " | ".join(models) + " |",
               "|---|---|" + "---|" * len(models)]
        table: dict = {}
        for t in names:
            cells = []
            for m in models:
                task, _, right = seq[bench][m]
                acc = _acc([r for x, r in zip(task, right) if x == t], seed)
                table.setdefault(m, {})[t] = {"accuracy": acc[0], "ci": list(acc[1])}
                cells.append(_fmt_ci(*acc))
            md.append(f"| {t} | {tasks.count(t)} | " + " | ".join(cells) + " |")
        overall = {m: _acc(seq[bench][m][2], seed) for m in models}
        md += ["| **all** | " + f"{len(tasks)} | " + " | ".join(_fmt_ci(*overall[m]) for m in models) + " |", ""]
        results["sequences"][bench] = {"tasks": table, "overall": {m: [v, list(ci)] for m, (v, ci) in overall.items()}}

    md += ["## Knowledge-aware multi-image and video tasks: what the knowledge base adds", ""]
    knowledge = {}
    if all(a in q.arms for a in HEADLINE):
        a, b = (f"onevision-{x}" for x in HEADLINE)
        md += [f"| benchmark | questions | {a} | {b} | {a} - {b} |", "|---|---|---|---|---|"]
        for bench, name in BENCH_NAMES.items():
            _, kinds, ra = seq[bench][a]
            rb = seq[bench][b][2]
            ka = [r for k, r in zip(kinds, ra) if k == "knowledge"]
            kb = [r for k, r in zip(kinds, rb) if k == "knowledge"]
            d, ci = paired_delta_ci(ka, kb, seed=seed)
            knowledge[bench] = {"questions": len(ka), "delta": d, "ci": list(ci)}
            md.append(f"| {name} | {len(ka)} | {_fmt_ci(*_acc(ka, seed))} | {_fmt_ci(*_acc(kb, seed))} | "
                      f"{_fmt_ci(d, ci)} |")
        md.append("")
    else:
        md += ["Needs both arms (`--arms evolved-noknow,evolved`).", ""]
    results["knowledge"] = knowledge

    markers = {p.stem: json.loads(p.read_text()) for p in sorted((q.out / ".steps").glob("*.json"))}
    total = sum(v["seconds"] for v in markers.values())
    tg = _targets(seq, single, knowledge, si, ov, wall_seconds(markers), seed)
    results["targets"] = [{"target": t, "measured": v, "met": ok} for t, v, ok in tg]
    results["times"] = {k: v["seconds"] for k, v in markers.items()}
    md += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    md += [f"| {t} | {v} | {'yes' if ok else 'NO'} |" for t, v, ok in tg] + [""]
    md += ["## Time per step", "", "| step | seconds | CPU |", "|---|---|---|"]
    for k, v in markers.items():
        share = v.get("cpu_share")
        md.append(f"| {k} | {v['seconds']:.0f} | {f'{100 * share:.0f}%' if share is not None else '-'} |")
    md += [f"| **total** | {total:.0f} | |", ""]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    text = "\n".join(md)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_page(text, "Kanva OneVision curriculum"), encoding="utf-8")
    return {"markdown": out / "report.md", "html": out / "report.html", "results": out / "results.json"}


def _targets(seq: dict, single: dict, knowledge: dict, si: str, ov: str, seconds: float,
             seed: int) -> list[tuple[str, str, bool | None]]:
    """Issue 29's targets of the default run."""
    out = []
    for bench, goal in (("muirbench", 70.0), ("mvbench", 60.0)):
        v, ci = _acc(seq[bench][ov][2], seed)
        out.append((f"{BENCH_NAMES[bench]} of {ov} >= {goal:.0f}%", _fmt_ci(v, ci), v >= goal))
    for bench, k in knowledge.items():
        out.append((f"{BENCH_NAMES[bench]}, knowledge tasks: evolved - evolved-noknow >= +20",
                    _fmt_ci(k["delta"], k["ci"]), k["delta"] >= 20))
    mme = single.get("mme")
    if mme:
        d = mme["perception_deltas"][pair_key(ov, si)]
        out.append((f"MME perception of {ov} not below {si} beyond the interval", _fmt_ci(d["delta"], d["ci"]),
                    d["ci"][1] >= 0))
    out.append(("whole run <= 60 min (wall clock)", f"{seconds / 60:.1f} min wall clock", seconds <= 3600))
    return out
