"""The quickstart report: what improved, what did not, and how sure we are.

Every figure is recomputed from the answer files and the benchmark ground truth with the official
parsing rules (kanva.eval), with a bootstrap confidence interval over images (MME), questions (POPE)
or circular groups (MMBench), and a paired bootstrap for the difference between the two models.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np

from kanva.eval.mme import COGNITION, KANVA_COGNITION, PERCEPTION, load_mme, parse_yes_no
from kanva.eval.mmbench import extract_choice, load_mmbench
from kanva.eval.pope import load_pope, parse_pope

LABELS = {"seed": "seed only", "evolved": "seed + evolved"}


def _answers(path: Path) -> dict[str, str]:
    out = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out[str(row["question_id"])] = row.get("text", "")
    return out


# ---- per-unit correctness ----------------------------------------------------------------------


def mme_units(bench: Path, answers: dict[str, str]) -> dict[str, dict[str, list]]:
    """subtask -> {image: [correct per question]}; a missing answer is wrong."""
    data = load_mme(bench)
    out: dict[str, dict[str, list]] = {}
    for q in data.questions:
        ok = parse_yes_no(answers.get(q.uid, "")) == q.gt
        out.setdefault(q.subtask, {}).setdefault(q.image, []).append(ok)
    return out


def pope_units(files: list[Path], answers: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (labels yes?, predictions yes?)."""
    data = load_pope(files)
    out: dict[str, tuple[list, list]] = {}
    for q in data.questions:
        lab, pred = out.setdefault(q.split, ([], []))
        lab.append(q.label == "yes")
        pred.append(parse_pope(answers.get(q.uid, "")) == "yes")
    return {k: (np.array(a), np.array(b)) for k, (a, b) in out.items()}


def mmbench_units(tsv: Path, answers: dict[str, str]) -> dict[int, tuple[str, bool, bool]]:
    """group -> (category, circular correct, first pass correct)."""
    data = load_mmbench(tsv)
    groups: dict[int, list] = {}
    for r in sorted(data.rows, key=lambda r: r.index):
        ok = extract_choice(answers.get(str(r.index), ""), r.options) == r.answer
        groups.setdefault(r.group, [r.category, []])[1].append(ok)
    return {g: (cat, all(oks), oks[0]) for g, (cat, oks) in groups.items()}


def mmbench_groups_asked(tsv: Path, answers: dict[str, str]) -> set[int]:
    return {r.group for r in load_mmbench(tsv).rows if str(r.index) in answers}


# ---- scores with bootstrap --------------------------------------------------------------------


def _mme_score(per_image: list[list[bool]]) -> float:
    if not per_image:
        return float("nan")
    acc = sum(sum(v) for v in per_image) / sum(len(v) for v in per_image)
    acc_plus = sum(all(v) for v in per_image) / len(per_image)
    return 100 * acc + 100 * acc_plus


def _ci(samples: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))


def mme_table(units: dict[str, dict], n_boot: int, seed: int) -> dict:
    """Per subtask for each model: score, CI, n questions; the paired difference evolved - seed."""
    rng = np.random.default_rng(seed)
    subtasks = [s for s in PERCEPTION + COGNITION + KANVA_COGNITION if s in units["seed"]]
    rows, boot_perc = {}, {m: np.zeros(n_boot) for m in units}
    for s in subtasks:
        images = sorted(units["seed"][s])
        idx = rng.integers(0, len(images), size=(n_boot, len(images)))
        row = {"questions": sum(len(units["seed"][s][i]) for i in images), "images": len(images)}
        boots = {}
        for m in units:
            vals = [units[m][s].get(i, [False, False]) for i in images]
            row[m] = _mme_score(vals)
            boots[m] = np.array([_mme_score([vals[j] for j in b]) for b in idx])
            row[f"{m}_ci"] = _ci(boots[m])
            if s in PERCEPTION:
                boot_perc[m] += boots[m]
        if "evolved" in units and "seed" in units:
            row["delta"] = row["evolved"] - row["seed"]
            row["delta_ci"] = _ci(boots["evolved"] - boots["seed"])
        rows[s] = row
    perc = {m: sum(rows[s][m] for s in subtasks if s in PERCEPTION) for m in units}
    perc_max = 200 * sum(s in PERCEPTION for s in subtasks)
    return {"subtasks": rows, "perception": perc, "perception_ci": {m: _ci(boot_perc[m]) for m in units},
            "perception_max": perc_max}


def _f1(lab: np.ndarray, pred: np.ndarray) -> float:
    tp = np.sum(lab & pred)
    return float(2 * tp / max(2 * tp + np.sum(~lab & pred) + np.sum(lab & ~pred), 1))


def pope_table(units: dict[str, dict], n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    out = {}
    mean_boot = {m: np.zeros(n_boot) for m in units}
    splits = list(units["seed"])
    for sp in splits:
        lab = units["seed"][sp][0]
        idx = rng.integers(0, len(lab), size=(n_boot, len(lab)))
        row = {"questions": int(len(lab))}
        for m in units:
            lab_m, pred = units[m][sp]
            row[m] = {"f1": _f1(lab_m, pred), "accuracy": float(np.mean(lab_m == pred)),
                      "yes_ratio": float(np.mean(pred))}
            b = np.array([_f1(lab_m[i], pred[i]) for i in idx])
            row[m]["f1_ci"] = _ci(b)
            mean_boot[m] += b / len(splits)
        out[sp] = row
    means = {m: float(np.mean([out[sp][m]["f1"] for sp in splits])) for m in units}
    yes = {m: float(np.mean([out[sp][m]["yes_ratio"] for sp in splits])) for m in units}
    return {"splits": out, "mean_f1": means, "mean_f1_ci": {m: _ci(mean_boot[m]) for m in units}, "yes_ratio": yes}


def mmbench_table(units: dict[str, dict], n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 2)
    groups = sorted(units["seed"])
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    out = {"questions": len(groups)}
    for m in units:
        circ = np.array([units[m][g][1] for g in groups])
        first = np.array([units[m][g][2] for g in groups])
        out[m] = {"circular": 100 * float(circ.mean()), "circular_ci": _ci(100 * circ[idx].mean(1)),
                  "circ0": 100 * float(first.mean())}
    cats = sorted({units["seed"][g][0] for g in groups})
    out["categories"] = {
        c: {"questions": sum(units["seed"][g][0] == c for g in groups),
            **{m: 100 * float(np.mean([units[m][g][1] for g in groups if units[m][g][0] == c])) for m in units}}
        for c in cats
    }
    return out


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
    answers = {m: {b: _answers(q.answers(m, b)) for b in cfg.eval.benchmarks} for m in ("seed", "evolved")}
    results: dict = {}
    if "mme" in cfg.eval.benchmarks:
        units = {m: mme_units(q.bench_data("mme")[0], answers[m]["mme"]) for m in answers}
        results["mme"] = mme_table(units, n_boot, seed)
    if "pope" in cfg.eval.benchmarks:
        units = {m: pope_units(q.bench_data("pope"), answers[m]["pope"]) for m in answers}
        results["pope"] = pope_table(units, n_boot, seed)
    if "mmbench" in cfg.eval.benchmarks:
        units = {m: mmbench_units(q.bench_data("mmbench")[0], answers[m]["mmbench"]) for m in answers}
        if cfg.eval.mmbench_limit:  # score only the circular groups that were asked (--limit)
            asked = mmbench_groups_asked(q.bench_data("mmbench")[0], answers["seed"]["mmbench"])
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
    (out / "report.html").write_text(_html(text), encoding="utf-8")
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
            a = {m: answers[m]["mme"].get(qq.uid, "(missing)").replace("|", "/").replace("\n", " ") for m in answers}
            md.append(f"| {qq.subtask} | {qq.question.split('?')[0]}? | {qq.gt} | {a['seed']} | {a['evolved']} |")
        md.append("")
    return md


def _html(markdown: str) -> str:
    """A dependency-free rendering of our own markdown subset (headings, tables, images, lists, bold)."""
    import re

    body, table = [], []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', s)
        s = re.sub(r"\[([^\]]*)\]\(([^)]+)\)", r'<a href="\2">\1</a>', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)

    def flush():
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            h = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
            b = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
            body.append(f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}"
             "img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Kanva quickstart</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
