"""The quickstart report: what improved, what did not, and how sure we are.

Every figure is recomputed from the answer files and the benchmark ground truth with the official
parsing rules (kanva.eval), with a bootstrap confidence interval over images (MME), questions (POPE)
or circular groups (MMBench), and a paired bootstrap for the difference between the two models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from kanva.eval.mme import load_mme, match_mme
from kanva.eval.report import markdown_page
from kanva.quickstart.scores import (load_model_answers, mme_table, mme_units, mmbench_table, mmbench_units,
                                     pope_table, pope_units)

LABELS = {"seed": "seed only", "evolved": "seed + evolved"}


# ---- figures ----------------------------------------------------------------------------------


def _bar_chart(path: Path, title: str, names: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 3.4))
    w = 0.8 / len(series)
    for k, (label, vals) in enumerate(series.items()):
        ax.bar(np.arange(len(names)) + k * w - 0.4 + w / 2, vals, w, label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loss_chart(path: Path, curves: dict[str, Path]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = False
    for label, f in curves.items():
        if not f.is_file():
            continue
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if "loss" in r and "step" in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=label)
            drawn = True
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


# ---- the report -------------------------------------------------------------------------------


def _fmt_ci(v: float, ci: tuple[float, float], nd: int = 1) -> str:
    return f"{v:.{nd}f} [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def targets(q, mme: dict | None, pope: dict | None, times: dict) -> list[tuple[str, str, bool | None]]:
    out = []
    if mme:
        p, mx = mme["perception"]["evolved"], mme["perception_max"]
        out.append(("evolved perception >= 75% of max", f"{p:.1f} / {mx} = {100 * p / mx:.1f}%", p >= 0.75 * mx))
        if "knowledge" in mme["subtasks"]:
            d = mme["subtasks"]["knowledge"]["delta"]
            out.append(("knowledge: evolved - seed >= 30 points", f"{d:+.1f}", d >= 30))
    if pope:
        f1, yr = pope["mean_f1"]["evolved"], pope["yes_ratio"]["evolved"]
        out.append(("POPE mean F1 >= 0.80 (evolved)", f"{f1:.3f}", f1 >= 0.80))
        out.append(("POPE yes-ratio in [0.4, 0.6] (evolved)", f"{yr:.3f}", 0.4 <= yr <= 0.6))
    total = sum(times.values())
    out.append(("whole run <= 30 min", f"{total / 60:.1f} min", total <= 1800))
    return out


def write_report(q) -> dict[str, Path]:
    """Write q.report_dir/{report.md, report.html, results.json, *.png, gallery/}."""
    cfg = q.cfg
    out = q.report_dir
    if out.exists():
        shutil.rmtree(out)
    (out / "gallery").mkdir(parents=True)
    n_boot, seed = cfg.eval.bootstrap, cfg.seed
    answers = {m: {b: load_model_answers(q.answers(m, b)) for b in cfg.eval.benchmarks} for m in ("seed", "evolved")}
    results: dict = {}
    if "mme" in cfg.eval.benchmarks:
        units = {m: mme_units(q.bench_data("mme")[0], answers[m]["mme"]) for m in answers}
        results["mme"] = mme_table(units, n_boot, seed)
    if "pope" in cfg.eval.benchmarks:
        units = {m: pope_units(q.bench_data("pope"), answers[m]["pope"]) for m in answers}
        results["pope"] = pope_table(units, n_boot, seed)
    if "mmbench" in cfg.eval.benchmarks:
        units = {m: mmbench_units(q.bench_data("mmbench")[0], answers[m]["mmbench"]) for m in answers}
        asked = set(units["seed"])  # with --limit only some circular groups were asked: score those
        units = {m: {g: v for g, v in u.items() if g in asked} for m, u in units.items()}
        results["mmbench"] = mmbench_table(units, n_boot, seed)
    times = {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((q.out / ".steps").glob("*.json"))}
    results["times"] = times
    results["training"] = {m: _json(q.out / ".steps" / f"train_{m}.json").get("summary", {}) for m in answers}
    results["targets"] = [{"target": t, "measured": v, "met": ok} for t, v, ok in targets(q, results.get("mme"), results.get("pope"), times)]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))

    md: list[str] = ["# Kanva quickstart report", ""]
    md += [f"Config `{cfg.source}`, preset `{cfg.preset}`, seed {cfg.seed}. Two models share everything up to the "
           "instruction stages and get the same token budget per stage; one sees the seed instructions only, "
           "the other seed + knowledge-evolved instructions. Intervals are 95% bootstrap intervals "
           f"({n_boot} resamples over images, questions or circular groups); a difference whose interval "
           "excludes 0 is called significant.", ""]
    md += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    md += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |" for t in results["targets"]]
    md += [""]
    md += _verdict(results)
    if "mme" in results:
        r = results["mme"]
        md += ["## MME-format synthetic benchmark (points; max 200 per subtask)", "",
               "| subtask | questions | seed only | seed + evolved | difference |", "|---|---|---|---|---|"]
        for s, row in r["subtasks"].items():
            md.append(f"| {s} | {row['questions']} | {_fmt_ci(row['seed'], row['seed_ci'])} | "
                      f"{_fmt_ci(row['evolved'], row['evolved_ci'])} | {_fmt_ci(row['delta'], row['delta_ci'])} |")
        md.append(f"| **perception** | | {_fmt_ci(r['perception']['seed'], r['perception_ci']['seed'])} | "
                  f"{_fmt_ci(r['perception']['evolved'], r['perception_ci']['evolved'])} | "
                  f"{r['perception']['evolved'] - r['perception']['seed']:+.1f} |")
        md.append("")
        names = list(r["subtasks"])
        _bar_chart(out / "mme.png", "MME-format subtasks", names,
                   {LABELS[m]: [r["subtasks"][s][m] for s in names] for m in ("seed", "evolved")}, "score")
        md += ["![MME](mme.png)", ""]
    if "pope" in results:
        r = results["pope"]
        md += ["## POPE-format synthetic benchmark", "",
               "| split | questions | model | F1 | accuracy | yes ratio |", "|---|---|---|---|---|---|"]
        for sp, row in r["splits"].items():
            for m in ("seed", "evolved"):
                v = row[m]
                md.append(f"| {sp} | {row['questions']} | {LABELS[m]} | {_fmt_ci(v['f1'], v['f1_ci'], 3)} | "
                          f"{v['accuracy']:.3f} | {v['yes_ratio']:.3f} |")
        for m in ("seed", "evolved"):
            md.append(f"| **mean** | | {LABELS[m]} | {_fmt_ci(r['mean_f1'][m], r['mean_f1_ci'][m], 3)} | | "
                      f"{r['yes_ratio'][m]:.3f} |")
        md.append("")
        splits = list(r["splits"])
        _bar_chart(out / "pope.png", "POPE-format F1", splits,
                   {LABELS[m]: [r["splits"][s][m]["f1"] for s in splits] for m in ("seed", "evolved")}, "F1")
        md += ["![POPE](pope.png)", ""]
    if "mmbench" in results:
        r = results["mmbench"]
        md += ["## MMBench-format synthetic benchmark (CircularEval, percent)", "",
               f"{r['questions']} questions (each asked in every circular rotation; right only if all are right).", "",
               "| | seed only | seed + evolved |", "|---|---|---|",
               f"| overall (circular) | {_fmt_ci(r['seed']['circular'], r['seed']['circular_ci'])} | "
               f"{_fmt_ci(r['evolved']['circular'], r['evolved']['circular_ci'])} |",
               f"| first pass only (circ0) | {r['seed']['circ0']:.1f} | {r['evolved']['circ0']:.1f} |"]
        for c, v in r["categories"].items():
            md.append(f"| {c} ({v['questions']} q) | {v['seed']:.1f} | {v['evolved']:.1f} |")
        md.append("")
        cats = list(r["categories"])
        _bar_chart(out / "mmbench.png", "MMBench-format categories (circular)", cats,
                   {LABELS[m]: [r["categories"][c][m] for c in cats] for m in ("seed", "evolved")}, "percent")
        md += ["![MMBench](mmbench.png)", ""]
    curves = {"vision (per-patch BCE)": q.vision / "metrics.jsonl",
              "align": q.train_dir / "align" / "align" / "metrics.jsonl",
              **{f"read (text): {LABELS[m]}": q.train_dir / m / "read" / "metrics.jsonl" for m in ("seed", "evolved")},
              **{f"instruct: {LABELS[m]}": q.train_dir / m / "instruct" / "metrics.jsonl" for m in ("seed", "evolved")}}
    if _loss_chart(out / "loss.png", curves):
        md += ["## Training", "", "![loss curves](loss.png)", ""]
    md += ["| model | stage | steps | tokens trained | tokens/s |", "|---|---|---|---|---|"]
    for m in ("seed", "evolved"):
        for stage in ("read", "instruct"):
            t = _json(q.train_dir / m / stage / "summary.json")
            if t:
                tps = t.get("tokens_per_s")
                md.append(f"| {LABELS[m]} | {stage} | {t.get('steps_done', '?')} | {t.get('tokens', '?')} | "
                          f"{f'{tps:.0f}' if isinstance(tps, (int, float)) else '?'} |")
    md.append("")
    md += _data_section(q)
    md += _gallery(q, answers, out)
    md += ["## Time per step", "", "| step | seconds |", "|---|---|"]
    md += [f"| {k} | {v:.0f} |" for k, v in times.items()] + [f"| **total** | {sum(times.values()):.0f} |", ""]
    text = "\n".join(md)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_page(text, "Kanva quickstart"), encoding="utf-8")
    return {"markdown": out / "report.md", "html": out / "report.html", "results": out / "results.json"}


def _json(p: Path) -> dict:
    return json.loads(p.read_text()) if p.is_file() else {}


def _verdict(results: dict) -> list[str]:
    """Plain sentences: what improved significantly, what got worse, what did not move."""
    better, worse, flat = [], [], []
    for s, row in results.get("mme", {}).get("subtasks", {}).items():
        lo, hi = row["delta_ci"]
        (better if lo > 0 else worse if hi < 0 else flat).append(f"MME {s} ({row['delta']:+.1f})")
    out = ["## What changed", ""]
    out.append("- Improved significantly with evolved data: " + (", ".join(better) or "nothing") + ".")
    out.append("- Got significantly worse: " + (", ".join(worse) or "nothing") + ".")
    out.append("- No significant change: " + (", ".join(flat) or "nothing") + ".")
    if "pope" in results:
        p = results["pope"]
        out.append(f"- POPE mean F1: {p['mean_f1']['seed']:.3f} (seed only) vs {p['mean_f1']['evolved']:.3f} "
                   f"(seed + evolved).")
    if "mmbench" in results:
        m = results["mmbench"]
        out.append(f"- MMBench circular: {m['seed']['circular']:.1f} vs {m['evolved']['circular']:.1f}.")
    return out + [""]


def _data_section(q) -> list[str]:
    summary = q.evolved_dir / "summary.json"
    md = ["## Data", ""]
    if not summary.is_file():
        return md + ["(no data summary found)", ""]
    s = json.loads(summary.read_text())
    md += [f"Full data report: [`{q.evolved_dir / 'report.html'}`](../data/evolved/report.html).", ""]
    seed, evolved = s.get("seed") or {}, s.get("evolved") or {}
    rows = [("samples", lambda d: d.get("samples")), ("question-answer units", lambda d: d.get("units")),
            ("images", lambda d: d.get("images")),
            ("yes share of yes/no answers", lambda d: (d.get("yes_no") or {}).get("yes_ratio")),
            ("units using KB knowledge", lambda d: d.get("knowledge_share")),
            ("near-duplicate rate", lambda d: d.get("near_duplicate_rate")),
            ("distinct answer bigrams", lambda d: (d.get("distinct") or {}).get("answer_2")),
            ("mean question words", lambda d: (d.get("question_words") or {}).get("mean")),
            ("mean answer words", lambda d: (d.get("answer_words") or {}).get("mean"))]

    def cell(v):
        if v is None:
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    md += ["| figure | seed | seed + evolved |", "|---|---|---|"]
    md += [f"| {name} | {cell(get(seed))} | {cell(get(evolved))} |" for name, get in rows] + [""]
    return md


def _gallery(q, answers: dict, out: Path) -> list[str]:
    from PIL import Image

    n = q.cfg.eval.gallery
    if "mme" not in answers["seed"] or n <= 0:
        return []
    data = load_mme(q.bench_data("mme")[0])
    shown = {m: {qq.uid: a.text for qq, a in zip(data.questions, match_mme(data, answers[m]["mme"])[0]) if a}
             for m in answers}
    by_image: dict[str, list] = {}
    for qq in data.questions:
        by_image.setdefault(qq.image_rel, []).append(qq)
    # Images asked about in the most subtasks first, for a varied gallery.
    order = sorted(by_image, key=lambda k: (-len({x.subtask for x in by_image[k]}), k))[:n]
    md = ["## Gallery (test images, both models' answers)", ""]
    for rel in order:
        src = data.root / rel
        if not src.is_file():
            src = data.root / "images" / Path(rel).name
        dst = out / "gallery" / (Path(rel).stem + ".png")
        with Image.open(src) as im:
            im.convert("RGB").resize((160, 160)).save(dst)
        md += [f"![{Path(rel).name}](gallery/{dst.name})", "", "| subtask | question | truth | seed only | seed + evolved |",
               "|---|---|---|---|---|"]
        for qq in by_image[rel]:
            a = {m: shown[m].get(qq.uid, "(missing)").replace("|", "/").replace("\n", " ") for m in answers}
            md.append(f"| {qq.subtask} | {qq.question.split('?')[0]}? | {qq.gt} | {a['seed']} | {a['evolved']} |")
        md.append("")
    return md
