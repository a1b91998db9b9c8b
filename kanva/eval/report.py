"""`kanva eval report RUN... --out DIR`: runs side by side, as markdown and HTML, with bar charts.

A RUN is a results JSON (`kanva eval run` writes one beside its answers; `kanva eval score --json` too).
Runs are grouped by benchmark; for each benchmark a table puts every metric of every run side by side
and a grouped bar chart (matplotlib, Agg backend) shows each subtask / category / split per run.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from kanva.errors import KanvaError
from kanva.jsonfile import read_json

TITLES = {"mme": "MME (points)", "pope": "POPE", "mmbench": "MMBench (CircularEval, %)", "sqa": "ScienceQA-IMG (%)",
          "llava-bench": "LLaVA-Bench (% of reference)", "vqav2": "VQAv2 (%)", "vizwiz": "VizWiz (%)",
          "textvqa": "TextVQA (%)", "gqa": "GQA (%)", "mm-vet": "MM-Vet (%)",
          "seed": "SEED-Bench image (%)", "muirbench": "Multi-image MC, MUIRBench layout (%)",
          "mvbench": "Video MC, MVBench layout (%)"}


def load_run(path: Path) -> dict:
    path = Path(path)
    r = read_json(path, "results file")
    if not isinstance(r, dict) or r.get("benchmark") not in TITLES:
        raise KanvaError(f"{path}: not a kanva results JSON (no known 'benchmark')")
    try:
        metrics(r)
    except (KeyError, TypeError, AttributeError):
        notes = "; ".join(r.get("notes") or [])
        raise KanvaError(f"{path}: holds no scores for {r['benchmark']}" + (f" ({notes})" if notes else "")) from None
    return {**r, "_path": str(path)}


def _label(r: dict) -> str:
    run = r.get("run") or {}
    if run.get("model_id"):
        return f"{run['model_id']} ({run.get('prompt_style', '?')})"
    return Path(r["_path"]).stem


def metrics(r: dict) -> tuple[dict[str, float], dict[str, float]]:
    """(table metrics, chart metrics) of one result, names -> values."""
    b = r["benchmark"]
    if b == "mme":
        table = {**r["subtasks"], "perception": r["perception"], "cognition": r["cognition"]}
        return table, dict(r["subtasks"])
    if b == "pope":
        table = {}
        for s, m in r["splits"].items():
            table.update({f"{s} F1": m["f1"], f"{s} accuracy": m["accuracy"], f"{s} yes-ratio": m["yes_ratio"]})
        table["mean F1"] = r["mean_f1"]
        return table, {**{s: m["f1"] for s, m in r["splits"].items()}, "mean": r["mean_f1"]}
    if b == "mmbench":
        table = {"overall (circular)": r["overall"], "circ0 (first pass)": r["circ0"]}
        table.update({f"l2: {k}": v for k, v in r["l2"].items()})
        table.update({f"category: {k}": v for k, v in r["category"].items()})
        return table, {"overall": r["overall"], **r["category"]}
    if b == "sqa":
        table = {"IMG accuracy": r["img_accuracy"], "accuracy (all)": r["accuracy"]}
        return table, dict(table)
    if b in ("vqav2", "vizwiz", "textvqa"):
        table = {"accuracy": r["accuracy"], **{f"answer type: {k}": v for k, v in r["answer_types"].items()}}
        return table, dict(table)
    if b == "seed":
        table = {"image accuracy": r["image_accuracy"], **r["dimensions"]}
        return table, dict(table)
    if b == "mm-vet":
        table = {"total": r["total"], "std": r["std"], **r["capabilities"]}
        return table, {"total": r["total"], **r["capabilities"]}
    if b == "gqa":
        table = {"accuracy": r["accuracy"], "binary": r["binary"], "open": r["open"]}
        return table, dict(table)
    if b in ("muirbench", "mvbench"):
        table = {"overall": r["overall"], **{f"kind: {k}": v["accuracy"] for k, v in r["kinds"].items()},
                 **{k: v["accuracy"] for k, v in r["tasks"].items()}}
        return table, dict(table)
    table = {"overall": r["overall"], **r["categories"]}
    return table, dict(table)


def _not_comparable(r: dict) -> bool:
    """A judged score under Kanva's own prompt/rules: marked in the summary, since it is no published metric."""
    if r["benchmark"] == "llava-bench":
        return (r.get("judge_info") or {}).get("comparable") is False
    if r["benchmark"] == "mm-vet":
        return (r.get("judge") or {}).get("comparable") is False
    return False


# The figure each benchmark is quoted by in papers' tables: (column, value of a result).
HEADLINES = {
    "mme": [("MME perception", lambda r: r["perception"]), ("MME cognition", lambda r: r["cognition"])],
    "mmbench": [("MMBench", lambda r: r["overall"])],
    "pope": [("POPE F1 (%)", lambda r: 100 * r["mean_f1"])],
    "sqa": [("ScienceQA-IMG", lambda r: r["img_accuracy"])],
    "llava-bench": [("LLaVA-Bench", lambda r: r["overall"])],
    "vqav2": [("VQAv2", lambda r: r["accuracy"])],
    "vizwiz": [("VizWiz", lambda r: r["accuracy"])],
    "textvqa": [("TextVQA", lambda r: r["accuracy"])],
    "gqa": [("GQA", lambda r: r["accuracy"])],
    "mm-vet": [("MM-Vet", lambda r: r["total"])],
    "seed": [("SEED-IMG", lambda r: r["image_accuracy"])],
    "muirbench": [("Multi-image MC", lambda r: r["overall"])],
    "mvbench": [("Video MC", lambda r: r["overall"])],
}


def summary(runs: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """(models, columns, cells): every benchmark's headline figure per model, in one table.

    A judged score under Kanva's own prompt is marked "*" (not comparable with published figures); a
    model with two results for a column shows the later one listed.
    """
    models = list(dict.fromkeys(_label(r) for r in runs))
    columns = [c for b in TITLES for c, _ in HEADLINES[b] if any(r["benchmark"] == b for r in runs)]
    cells = {}
    for r in runs:
        for col, fn in HEADLINES[r["benchmark"]]:
            cells[(_label(r), col)] = f"{fn(r):.2f}" + ("*" if _not_comparable(r) else "")
    return models, columns, cells


def _chart(bench: str, runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    per_run = [metrics(r)[1] for r in runs]
    names = _order(bench, list(dict.fromkeys(k for m in per_run for k in m)))
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, len(names) * (0.35 + 0.2 * len(runs)) + 2)), 4.2))
    for i, (r, m) in enumerate(zip(runs, per_run)):
        xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, [m.get(n, 0.0) for n in names], width, label=_label(r))
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_title(TITLES[bench])
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: Any, bench: str) -> str:
    """POPE metrics are fractions (5 decimals, as its F1 is quoted); the rest points or percent."""
    if v is None:
        return ""
    return f"{v:.5f}" if bench == "pope" else f"{v:.2f}"


def _order(bench: str, names: list[str]) -> list[str]:
    if bench != "mme":
        return names
    from kanva.eval.mme import SUBTASKS

    rank = {n: i for i, n in enumerate([*SUBTASKS, "perception", "cognition"])}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))


def _info(r: dict) -> list[str]:
    run = r.get("run") or {}
    a = r.get("answers") or {}
    out = [f"results: {r['_path']}"]
    if run:
        out.append(f"model {run.get('model')}, prompt style {run.get('prompt_style')}, "
                   f"{run.get('questions')} questions, batch {run.get('batch_size')}, finished {run.get('finished')}")
    if a:
        out.append(f"answers: {a.get('matched')}/{a.get('expected')}, missing {a.get('missing')}, "
                   f"duplicate {a.get('duplicates')}, unmatched {a.get('unmatched')}")
    judge = r.get("judge")
    if isinstance(judge, dict):  # mm-vet, the ScienceQA ensemble: model, versions, prompt hash, comparability
        judge = (f"{judge.get('model')} (versions {', '.join(judge.get('versions') or []) or '?'}, prompt "
                 f"{judge.get('prompt_hash')}{'' if judge.get('comparable') else ', not comparable'})")
    elif judge and r.get("judge_info"):
        info = r["judge_info"]
        judge = f"{judge} (versions {', '.join(info.get('versions') or []) or '?'}, rules {', '.join(info.get('rules') or [])})"
    if judge:
        out.append(f"judge: {judge}")
    failures = (r.get("judge_failures") or {}).get("count")
    if failures:
        out.append(f"judge failures: {failures} (not defaulted)")
    return out


def write_report(paths: list[Path], out: Path) -> dict[str, Path]:
    """Writes OUT/report.md, OUT/report.html and OUT/<bench>.png; returns their paths."""
    if not paths:
        raise KanvaError("give at least one results JSON")
    runs = [load_run(p) for p in paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_bench: dict[str, list[dict]] = {}
    for r in runs:
        by_bench.setdefault(r["benchmark"], []).append(r)
    models, columns, cells = summary(runs)
    md = ["# Kanva evaluation report", "", "## All benchmarks", "", "| model | " + " | ".join(columns) + " |",
          "|---|" + "---|" * len(columns)]
    md += [f"| {m} | " + " | ".join(cells.get((m, c), "") for c in columns) + " |" for m in models]
    note = "* judged with Kanva's own prompt: not comparable with published figures"
    marked = any(v.endswith("*") for v in cells.values())
    md += ["", note, ""] if marked else [""]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr><td>" + html.escape(m) + "</td>" + "".join(f"<td>{cells.get((m, c), '')}</td>" for c in columns)
                   + "</tr>" for m in models)
    body = [f"<h2>All benchmarks</h2><table><tr><th>model</th>{head}</tr>{rows}</table>"
            + (f"<p>{html.escape(note)}</p>" if marked else "")]
    written = {}
    for bench in [b for b in TITLES if b in by_bench]:
        rs = by_bench[bench]
        labels = [_label(r) for r in rs]
        if len(set(labels)) < len(labels):  # same model and style twice: tell them apart by file
            labels = [f"{lab} [{Path(r['_path']).stem}]" for lab, r in zip(labels, rs)]
            for r, lab in zip(rs, labels):
                r["run"] = {**(r.get("run") or {}), "model_id": lab, "prompt_style": (r.get("run") or {}).get("prompt_style", "?")}
        tables = [metrics(r)[0] for r in rs]
        names = _order(bench, list(dict.fromkeys(k for t in tables for k in t)))
        chart = out / f"{bench}.png"
        _chart(bench, rs, chart)
        written[bench] = chart
        md += [f"## {TITLES[bench]}", "", "| metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(rs)]
        md += [f"| {n} | " + " | ".join(_fmt(t.get(n), bench) for t in tables) + " |" for n in names]
        md += ["", f"![{bench}]({chart.name})", ""]
        for lab, r in zip(labels, rs):
            md += [f"- **{lab}**: " + "; ".join(_info(r))]
        md.append("")
        rows = "".join(
            "<tr><td>" + html.escape(n) + "</td>" + "".join(f"<td>{_fmt(t.get(n), bench)}</td>" for t in tables) + "</tr>"
            for n in names
        )
        head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels)
        info = "".join(f"<li><b>{html.escape(lab)}</b>: {html.escape('; '.join(_info(r)))}</li>" for lab, r in zip(labels, rs))
        body.append(
            f"<h2>{html.escape(TITLES[bench])}</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>"
            f'<p><img src="{chart.name}" alt="{bench} chart"></p><ul>{info}</ul>'
        )
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "img{max-width:100%}")
    (out / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Kanva evaluation report</title><style>{style}</style>"
        f"</head><body><h1>Kanva evaluation report</h1>{''.join(body)}</body></html>\n",
        encoding="utf-8",
    )
    written.update(markdown=out / "report.md", html=out / "report.html")
    return written


PAGE_STYLE = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
              "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:14px}"
              "img{max-width:100%}")


def markdown_page(markdown: str, title: str) -> str:
    """A self-contained HTML page of a markdown report (CommonMark with tables, by markdown-it-py)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body>{body}</body></html>\n")
