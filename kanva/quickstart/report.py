"""The quickstart report: the arms compared, what improved, what did not, and how sure we are.

Every figure is recomputed from the answer files and the benchmark ground truth with kanva/eval's matching and
parsing (kanva/quickstart/scores.py), with a bootstrap confidence interval over images (MME), questions (POPE)
or circular groups (MMBench), and a paired bootstrap for the difference of two models. The headline is the
knowledge subtask of `evolved` minus `evolved-noknow` (kanva/quickstart/arms.py); with several training seeds
each figure is given per seed and as mean and spread.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

from kanva.eval.report import markdown_page
from kanva.quickstart.arms import ARMS, HEADLINE
from kanva.quickstart.figures import bar_chart, gallery, loss_chart
from kanva.quickstart.steps import wall_seconds
from kanva.quickstart.scores import (load_model_answers, mme_table, mme_units, mmbench_table, mmbench_units,
                                     pair_key, pope_table, pope_units)

# The issue-24 targets of the default run (docs/quickstart.md#targets).
PERCEPTION_SHARE = 0.80
KNOWLEDGE_GAIN = 30.0
POPE_F1, YES_RATIO = 0.85, (0.4, 0.6)
NOVEL_DROP = 0.05
MMBENCH_CIRCULAR = 50.0
RUN_MINUTES = 45


# ---- scores ------------------------------------------------------------------------------------


def _pairs(arms: list[str]) -> list[tuple[str, str]]:
    """The compared pairs among the run's arms: the headline first, then each evolved arm against seed only."""
    want = [HEADLINE, ("evolved", "seed"), ("evolved-noknow", "seed")]
    return [(a, b) for a, b in want if a in arms and b in arms]


def score_models(q, models: dict[str, str], split: str, pairs: list[tuple[str, str]] | None = None) -> dict:
    """Every benchmark's table over `models` (name -> arm), differences between arms of the same seed (or the
    given `pairs` of model names)."""
    cfg = q.cfg
    n_boot, seed = cfg.eval.bootstrap, cfg.seed
    answers = {m: {b: load_model_answers(q.answers(m, b, split)) for b in cfg.eval.benchmarks} for m in models}
    if pairs is None:
        by_arm = {a: m for m, a in models.items()}
        pairs = [(by_arm[a], by_arm[b]) for a, b in _pairs(list(by_arm))]
    out: dict = {"answers": answers}
    if "mme" in cfg.eval.benchmarks:
        units = {m: mme_units(q.bench_data("mme", split)[0], answers[m]["mme"]) for m in models}
        out["mme"] = mme_table(units, n_boot, seed, pairs)
    if "pope" in cfg.eval.benchmarks:
        units = {m: pope_units(q.bench_data("pope", split), answers[m]["pope"]) for m in models}
        out["pope"] = pope_table(units, n_boot, seed)
    if "mmbench" in cfg.eval.benchmarks:
        units = {m: mmbench_units(q.bench_data("mmbench", split)[0], answers[m]["mmbench"]) for m in models}
        asked = set(units[next(iter(units))])  # with --limit only some circular groups were asked: score those
        units = {m: {g: v for g, v in u.items() if g in asked} for m, u in units.items()}
        out["mmbench"] = mmbench_table(units, n_boot, seed)
    return out


def _summary(r: dict, m: str) -> dict:
    """One model's headline figures from score_models' tables."""
    out = {}
    if "mme" in r:
        out["perception"] = r["mme"]["perception"][m]
        out["perception_max"] = r["mme"]["perception_max"]
        if "knowledge" in r["mme"]["subtasks"]:
            out["knowledge"] = r["mme"]["subtasks"]["knowledge"][m]
    if "pope" in r:
        out["pope_f1"], out["yes_ratio"] = r["pope"]["mean_f1"][m], r["pope"]["yes_ratio"][m]
    if "mmbench" in r:
        out["mmbench"] = r["mmbench"][m]["circular"]
    return out


def _spread(vals: list[float], nd: int = 1) -> str:
    """Mean ± sample standard deviation (min to max) over training seeds."""
    if len(vals) == 1:
        return f"{vals[0]:.{nd}f}"
    return (f"{statistics.mean(vals):.{nd}f} ± {statistics.stdev(vals):.{nd}f} "
            f"({min(vals):.{nd}f} to {max(vals):.{nd}f})")


# ---- the report -------------------------------------------------------------------------------


def _fmt_ci(v: float, ci: tuple[float, float], nd: int = 1) -> str:
    return f"{v:.{nd}f} [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def targets(per_seed: dict, novel: dict, wall: float, step_seconds: float) -> list[tuple[str, str, bool | None]]:
    """The issue-24 targets, measured on the run's training seeds (every seed must meet a target)."""
    out = []
    first = next(iter(per_seed.values()))
    names = first["names"]
    if "evolved" in names and "mme" in first["scores"]:
        gains = [r["scores"]["mme"]["subtasks"].get("knowledge", {}).get("deltas", {})
                 .get(pair_key(r["names"]["evolved"], r["names"]["evolved-noknow"]))
                 for r in per_seed.values()] if "evolved-noknow" in names else []
        if gains and all(gains):
            text = "; ".join(f"{g['delta']:+.1f} [{g['ci'][0]:+.1f}, {g['ci'][1]:+.1f}]" for g in gains)
            out.append((f"knowledge: evolved - evolved-noknow >= +{KNOWLEDGE_GAIN:.0f}, interval above 0", text,
                        all(g["delta"] >= KNOWLEDGE_GAIN and g["ci"][0] > 0 for g in gains)))
        ps = [_summary(r["scores"], r["names"]["evolved"]) for r in per_seed.values()]
        mx = ps[0]["perception_max"]
        out.append((f"evolved perception >= {PERCEPTION_SHARE:.0%} of max",
                    "; ".join(f"{p['perception']:.1f} / {mx}" for p in ps),
                    all(p["perception"] >= PERCEPTION_SHARE * mx for p in ps)))
    if "pope" in first["scores"]:
        for arm in ("evolved-noknow", "evolved"):
            if arm in names:
                ps = [_summary(r["scores"], r["names"][arm]) for r in per_seed.values()]
                out.append((f"POPE mean F1 >= {POPE_F1} at yes-ratio {YES_RATIO[0]}-{YES_RATIO[1]} ({arm})",
                            "; ".join(f"{p['pope_f1']:.3f} at {p['yes_ratio']:.2f}" for p in ps),
                            all(p["pope_f1"] >= POPE_F1 and YES_RATIO[0] <= p["yes_ratio"] <= YES_RATIO[1] for p in ps)))
    if novel and "evolved" in names:
        t = _summary(first["scores"], first["names"]["evolved"])["perception"]
        n = _summary(novel["scores"], novel["names"]["evolved"])["perception"]
        out.append((f"novel split: evolved perception within {NOVEL_DROP:.0%} of test", f"{n:.1f} vs {t:.1f}",
                    n >= (1 - NOVEL_DROP) * t))
    if "mmbench" in first["scores"] and "evolved" in names:
        ps = [_summary(r["scores"], r["names"]["evolved"]) for r in per_seed.values()]
        out.append((f"MMBench circular >= {MMBENCH_CIRCULAR:.0f}% (evolved)", "; ".join(f"{p['mmbench']:.1f}" for p in ps),
                    all(p["mmbench"] >= MMBENCH_CIRCULAR for p in ps)))
    out.append((f"whole run <= {RUN_MINUTES} min (wall clock)",
                f"{wall / 60:.1f} min wall clock ({step_seconds / 60:.1f} min of step time)", wall <= RUN_MINUTES * 60))
    return out


def write_report(q) -> dict[str, Path]:
    """Write q.report_dir/{report.md, report.html, results.json, *.png, gallery/}."""
    cfg = q.cfg
    out = q.report_dir
    if out.exists():
        shutil.rmtree(out)
    (out / "gallery").mkdir(parents=True)
    per_seed = {}
    for s in q.seeds:
        names = {q.model_arm(m)[0]: m for m in q.models(s)}
        per_seed[s] = {"names": names, "scores": score_models(q, {m: a for a, m in names.items()}, "test")}
    main = per_seed[q.seeds[0]]
    novel = {}
    if q.novel():
        novel = {"names": main["names"], "scores": score_models(q, {m: a for a, m in main["names"].items()}, "novel")}
    markers = {p.stem: json.loads(p.read_text()) for p in sorted((q.out / ".steps").glob("*.json"))}
    times = {k: v["seconds"] for k, v in markers.items()}
    results = {"arms": q.arms, "seeds": q.seeds,
               "test": {s: {k: v for k, v in r["scores"].items() if k != "answers"} for s, r in per_seed.items()},
               "novel": {k: v for k, v in novel.get("scores", {}).items() if k != "answers"},
               "times": times, "cpu_share": {k: v.get("cpu_share") for k, v in markers.items()}}
    tg = targets(per_seed, novel, wall_seconds(markers), sum(times.values()))
    results["targets"] = [{"target": t, "measured": v, "met": ok} for t, v, ok in tg]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))

    arms = [a for a in q.arms]
    label = {a: ARMS[a].label for a in arms}
    md: list[str] = ["# Kanva quickstart report", ""]
    md += [f"Config `{cfg.source}`, preset `{cfg.preset}`, seed {cfg.seed}; arms {', '.join(arms)}; training seeds "
           f"{', '.join(map(str, q.seeds))}. Every arm shares the world, the vision stage, the seed data and the "
           "benchmarks, and gets the same stages and token budget; the arms differ only in their instruction data "
           "(seed only; seed + evolution with every operator that reads the knowledge base off; seed + "
           "knowledge-aware evolution). Intervals are 95% bootstrap intervals "
           f"({cfg.eval.bootstrap} resamples over images, questions or circular groups); a difference whose "
           "interval excludes 0 is called significant.", ""]
    md += _headline(per_seed, q.seeds)
    md += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    md += [f"| {t} | {v} | {'yes' if ok else 'NO'} |" for t, v, ok in tg] + [""]
    md += _arms_table(main, novel, arms, label)
    if len(q.seeds) > 1:
        md += _seeds_table(per_seed, arms, label)
        md += _seed_subtasks_table(per_seed, arms, label)
    md += _benchmark_sections(main["scores"], main["names"], arms, label, out)
    curves = {"vision (per-patch BCE)": q.vision / "metrics.jsonl",
              "align": q.train_dir / "align" / "align" / "metrics.jsonl",
              **{f"read (text): {label[a]}": q.train_dir / m / "read" / "metrics.jsonl" for a, m in main["names"].items()},
              **{f"instruct: {label[a]}": q.train_dir / m / "instruct" / "metrics.jsonl" for a, m in main["names"].items()}}
    if loss_chart(out / "loss.png", curves):
        md += ["## Training", "", "![loss curves](loss.png)", ""]
    md += ["| model | stage | steps | tokens trained | tokens/s |", "|---|---|---|---|---|"]
    for m in q.models():
        for stage in ("read", "instruct"):
            t = _json(q.train_dir / m / stage / "summary.json")
            if t:
                tps = t.get("tokens_per_s")
                md.append(f"| {m} | {stage} | {t.get('steps_done', '?')} | {t.get('tokens', '?')} | "
                          f"{f'{tps:.0f}' if isinstance(tps, (int, float)) else '?'} |")
    md.append("")
    md += _data_section(q)
    md += gallery(q, {main["names"][a]: main["scores"]["answers"][main["names"][a]] for a in arms},
                   {main["names"][a]: label[a] for a in arms}, out)
    md += ["## Time per step", "", "CPU: the step's CPU time over its wall time, as a share of all the machine's "
           "cores (100% = every core busy).", "", "| step | seconds | CPU |", "|---|---|---|"]
    for k, v in markers.items():
        share = v.get("cpu_share")
        md.append(f"| {k} | {v['seconds']:.0f} | {f'{100 * share:.0f}%' if share is not None else '-'} |")
    md += [f"| **total** | {sum(times.values()):.0f} | |", ""]
    text = "\n".join(md)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_page(text, "Kanva quickstart"), encoding="utf-8")
    return {"markdown": out / "report.md", "html": out / "report.html", "results": out / "results.json"}


def _json(p: Path) -> dict:
    return json.loads(p.read_text()) if p.is_file() else {}


def _headline(per_seed: dict, seeds: list[int]) -> list[str]:
    """knowledge(evolved) - knowledge(evolved-noknow), per training seed with its paired interval; beside it the
    perception difference, whose target is not to fall below evolved-noknow beyond its interval at any seed."""
    first = per_seed[seeds[0]]
    a, b = HEADLINE
    if a not in first["names"] or b not in first["names"] or "mme" not in first["scores"]:
        return []
    rows, gains = [], []
    for s in seeds:
        r = per_seed[s]
        row = r["scores"]["mme"]["subtasks"].get("knowledge")
        if row is None:
            return []
        key = pair_key(r["names"][a], r["names"][b])
        d, p = row["deltas"][key], r["scores"]["mme"]["perception_deltas"][key]
        gains.append(d["delta"])
        rows.append(f"| {s} | {row[r['names'][a]]:.1f} | {row[r['names'][b]]:.1f} | "
                    f"{_fmt_ci(d['delta'], d['ci'])} | {_fmt_ci(p['delta'], p['ci'])} |")
    md = ["## Headline: what the knowledge base adds", "",
          "The knowledge subtask (MME-format, of 200) of the evolved model minus the model evolved without the "
          "knowledge base, with its paired bootstrap interval (and the same difference of perception):", "",
          "| training seed | evolved | evolved-noknow | difference | perception difference |", "|---|---|---|---|---|",
          *rows]
    if len(seeds) > 1:
        md.append(f"| mean ± sd | | | {_spread(gains)} | |")
    return md + [""]


def _arms_table(main: dict, novel: dict, arms: list[str], label: dict) -> list[str]:
    md = ["## Per arm", "", "| arm | perception | knowledge | POPE mean F1 (yes-ratio) | MMBench circular"
          + (" | perception on novel (drop) |" if novel else " |"), "|---|---|---|---|---|" + ("---|" if novel else "")]
    r = main["scores"]
    for a in arms:
        m = main["names"][a]
        cells = [label[a]]
        cells.append(_fmt_ci(r["mme"]["perception"][m], r["mme"]["perception_ci"][m]) if "mme" in r else "-")
        k = r.get("mme", {}).get("subtasks", {}).get("knowledge")
        cells.append(_fmt_ci(k[m], k[f"{m}_ci"]) if k else "-")
        cells.append(f"{r['pope']['mean_f1'][m]:.3f} ({r['pope']['yes_ratio'][m]:.2f})" if "pope" in r else "-")
        cells.append(f"{r['mmbench'][m]['circular']:.1f} (first pass {r['mmbench'][m]['circ0']:.1f})"
                     if "mmbench" in r else "-")
        if novel:
            t, n = r["mme"]["perception"][m], novel["scores"]["mme"]["perception"][m]
            cells.append(f"{n:.1f} ({n - t:+.1f}, {100 * (n - t) / t if t else 0:+.1f}%)")
        md.append("| " + " | ".join(cells) + " |")
    if "mme" in r:
        md.append("")
        md.append(f"Perception is of {r['mme']['perception_max']}. Differences between arms (paired):")
        md.append("")
        for key, d in r["mme"]["perception_deltas"].items():
            md.append(f"- perception {key}: {_fmt_ci(d['delta'], d['ci'])}")
    return md + [""]


def _seeds_table(per_seed: dict, arms: list[str], label: dict) -> list[str]:
    md = ["## Training seeds: mean ± sd (min to max)", "", "| arm | perception | knowledge | POPE mean F1 | "
          "MMBench circular |", "|---|---|---|---|---|"]
    for a in arms:
        sums = [_summary(r["scores"], r["names"][a]) for r in per_seed.values()]
        cells = [label[a]] + [_spread([x[k] for x in sums]) if all(k in x for x in sums) else "-"
                              for k in ("perception", "knowledge")]
        cells.append(_spread([x["pope_f1"] for x in sums], 3) if all("pope_f1" in x for x in sums) else "-")
        cells.append(_spread([x["mmbench"] for x in sums]) if all("mmbench" in x for x in sums) else "-")
        md.append("| " + " | ".join(cells) + " |")
    return md + [""]


def _seed_subtasks_table(per_seed: dict, arms: list[str], label: dict) -> list[str]:
    """Each MME subtask of each arm at every training seed: a subtask that moves with the seed shows here,
    where the totals hide it and the per-subtask section below has the first seed only."""
    runs = list(per_seed.values())
    if not all("mme" in r["scores"] for r in runs):
        return []
    md = [f"## MME subtasks by training seed ({' / '.join(map(str, per_seed))})", "",
          "| subtask | " + " | ".join(label[a] for a in arms) + " |", "|---|" + "---|" * len(arms)]
    for s in runs[0]["scores"]["mme"]["subtasks"]:
        cells = [" / ".join(f"{r['scores']['mme']['subtasks'][s][r['names'][a]]:.1f}" for r in runs) for a in arms]
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    return md + [""]


def _benchmark_sections(r: dict, names: dict, arms: list[str], label: dict, out: Path) -> list[str]:
    md = []
    models = [names[a] for a in arms]
    heads = [label[a] for a in arms]
    if "mme" in r:
        t = r["mme"]
        keys = list(next(iter(t["subtasks"].values()))["deltas"]) if t["subtasks"] else []
        md += ["## MME-format synthetic benchmark (points; max 200 per subtask)", "",
               "| subtask | questions | " + " | ".join(heads) + "".join(f" | {k}" for k in keys) + " |",
               "|---|---|" + "---|" * (len(heads) + len(keys))]
        for s, row in t["subtasks"].items():
            md.append(f"| {s} | {row['questions']} | " + " | ".join(_fmt_ci(row[m], row[f'{m}_ci']) for m in models)
                      + "".join(f" | {_fmt_ci(row['deltas'][k]['delta'], row['deltas'][k]['ci'])}" for k in keys) + " |")
        md += ["| **perception** | | " + " | ".join(_fmt_ci(t["perception"][m], t["perception_ci"][m]) for m in models)
               + "".join(f" | {_fmt_ci(t['perception_deltas'][k]['delta'], t['perception_deltas'][k]['ci'])}"
                         for k in keys) + " |", ""]
        subtasks = list(t["subtasks"])
        bar_chart(out / "mme.png", "MME-format subtasks", subtasks,
                   {label[a]: [t["subtasks"][s][names[a]] for s in subtasks] for a in arms}, "score")
        md += ["![MME](mme.png)", ""]
    if "pope" in r:
        t = r["pope"]
        md += ["## POPE-format synthetic benchmark", "",
               "| split | questions | model | F1 | accuracy | yes ratio |", "|---|---|---|---|---|---|"]
        for sp, row in t["splits"].items():
            for a in arms:
                v = row[names[a]]
                md.append(f"| {sp} | {row['questions']} | {label[a]} | {_fmt_ci(v['f1'], v['f1_ci'], 3)} | "
                          f"{v['accuracy']:.3f} | {v['yes_ratio']:.3f} |")
        for a in arms:
            m = names[a]
            md.append(f"| **mean** | | {label[a]} | {_fmt_ci(t['mean_f1'][m], t['mean_f1_ci'][m], 3)} | | "
                      f"{t['yes_ratio'][m]:.3f} |")
        md.append("")
        splits = list(t["splits"])
        bar_chart(out / "pope.png", "POPE-format F1", splits,
                   {label[a]: [t["splits"][s][names[a]]["f1"] for s in splits] for a in arms}, "F1")
        md += ["![POPE](pope.png)", ""]
    if "mmbench" in r:
        t = r["mmbench"]
        md += ["## MMBench-format synthetic benchmark (CircularEval, percent)", "",
               f"{t['questions']} questions (each asked in every circular rotation; right only if all are right).", "",
               "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads),
               "| overall (circular) | " + " | ".join(_fmt_ci(t[m]["circular"], t[m]["circular_ci"]) for m in models) + " |",
               "| first pass only (circ0) | " + " | ".join(f"{t[m]['circ0']:.1f}" for m in models) + " |"]
        for c, v in t["categories"].items():
            md.append(f"| {c} ({v['questions']} q) | " + " | ".join(f"{v[m]:.1f}" for m in models) + " |")
        md.append("")
        cats = list(t["categories"])
        bar_chart(out / "mmbench.png", "MMBench-format categories (circular)", cats,
                   {label[a]: [t["categories"][c][names[a]] for c in cats] for a in arms}, "percent")
        md += ["![MMBench](mmbench.png)", ""]
    return md


def _data_section(q) -> list[str]:
    md = ["## Data", ""]
    cols = {"seed": None}
    for kind in q.evolve_kinds():
        d = q.evolve_dir(kind)
        if (d / "summary.json").is_file():
            cols[d.name] = json.loads((d / "summary.json").read_text())
    if len(cols) == 1:
        return md + ["(no data summary found)", ""]
    first = next(v for v in cols.values() if v)
    md += ["Full data reports: " + ", ".join(f"[`{name}`](../data/{name}/report.html)" for name in cols if cols[name])
           + ".", ""]
    figures = {"seed": first.get("seed") or {}}
    figures.update({name: (s.get("evolved") or {}) for name, s in cols.items() if s})
    rows = [("samples", lambda d: d.get("samples")), ("question-answer units", lambda d: d.get("units")),
            ("images", lambda d: d.get("images")),
            ("yes share of yes/no answers", lambda d: (d.get("yes_no") or {}).get("yes_ratio")),
            ("units using KB knowledge (seed units included)", lambda d: d.get("knowledge_share")),
            ("near-duplicate rate", lambda d: d.get("near_duplicate_rate")),
            ("distinct answer bigrams", lambda d: (d.get("distinct") or {}).get("answer_2")),
            ("mean question words", lambda d: (d.get("question_words") or {}).get("mean")),
            ("mean answer words", lambda d: (d.get("answer_words") or {}).get("mean"))]

    def cell(v):
        if v is None:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    md += ["| figure | " + " | ".join(figures) + " |", "|---|" + "---|" * len(figures)]
    md += [f"| {name} | " + " | ".join(cell(get(f)) for f in figures.values()) + " |" for name, get in rows] + [""]
    # Units kept per operator in each evolution (before the final balance): what the arms' data differ in.
    ops = {name: {op: a["kept"] for op, a in s["provenance"]["acceptance"].items()}
           for name, s in cols.items() if s and "provenance" in s}
    if ops:
        names = sorted({op for v in ops.values() for op in v})
        md += ["Units kept per operator:", "", "| operator | " + " | ".join(ops) + " |", "|---|" + "---|" * len(ops)]
        md += [f"| {op} | " + " | ".join(str(v.get(op, 0)) for v in ops.values()) + " |" for op in names]
        md += ["| **all** | " + " | ".join(str(sum(v.values())) for v in ops.values()) + " |", ""]
    return md
