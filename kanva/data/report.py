"""`kanva data report DIR`: seed vs evolved, side by side, in `report.md`, `report.html` and `summary.json`.

Figures come from metrics.py (datasets) and provenance (operators). Plots are PNGs under `DIR/report/`
(matplotlib, Agg backend), linked from the markdown and embedded in the HTML so it is one self-contained file.
The report also names the LLM operators whose acceptance was low, which for SmolLM2-135M says which kinds of
evolution a model that small cannot do.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from kanva.data.coco import CocoSet
from kanva.data.image_sources import coco_specs, load_annotations
from kanva.data.llava import load_llava
from kanva.data.metrics import HIST_BINS, dataset_metrics, media_of, provenance_metrics, unit_key
from kanva.data.rundir import RunDir
from kanva.data.unit import parse_human
from kanva.errors import KanvaError

LOW_ACCEPTANCE = 0.2  # an LLM operator below this is reported as one the model could not do well


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _unit_info(records: list[dict]) -> dict[tuple[str, str], dict]:
    out = {}
    for r in records:
        if r.get("status") == "kept" and "question" in r:
            out[unit_key(r["image"], r["question"], r.get("options") or [], r["answer"])] = r
    return out


def _seed_info(baseline: Path, samples: list[dict]) -> dict[tuple[str, str], dict] | None:
    """Facts per seed turn from the seed file's provenance (`kanva data seed` writes one), if there is one."""
    prov = _read_jsonl(baseline.with_name(baseline.stem + ".provenance.jsonl"))
    if not prov:
        return None
    facts = {r["id"]: r.get("facts") or [] for r in prov if r.get("status") == "kept"}
    out = {}
    for s in samples:
        f = facts.get(str(s["id"]))
        if f is None:
            continue
        conv = s["conversations"]
        for t in range(0, len(conv) - 1, 2):
            q, _, opts = parse_human(conv[t]["value"], conv[t + 1]["value"])
            out[unit_key(media_of(s), q, opts, conv[t + 1]["value"])] = {"facts": f}
    return out


def build_summary(run_dir: str | Path, baseline: str | Path | None = None, coco: CocoSet | None = None,
                  coco_dir: str | Path | list[str] | None = None, split: str | None = None) -> dict[str, Any]:
    rd = RunDir(run_dir)
    config = rd.config()
    evolved_path = rd.path / "evolved.json"
    if not evolved_path.is_file():
        raise KanvaError(f"{rd.path}: no evolved.json (the run has not finished; run `kanva data evolve` again)")
    baseline = Path(baseline or config["input"])
    if coco is None and config.get("kind") in ("set", "clip") and not coco_dir:  # `kanva data evolve --kind`
        from kanva.data.sequence_join import load_sequences

        coco = load_sequences(config["world"], split or config["split"], config["kind"]).coco
    if coco is None:
        coco = load_annotations(coco_specs(coco_dir or config.get("coco")), split or config.get("split"))
    records = _read_jsonl(rd.prov)
    seed_samples = load_llava(baseline)
    evolved = load_llava(evolved_path)
    seed_info = _seed_info(baseline, seed_samples)
    info = _unit_info(records) | (seed_info or {})
    prov = provenance_metrics(records)
    llm_ops = {op: a for op, a in prov["acceptance"].items() if op.startswith("llm_")}
    return {
        "run": {k: config.get(k) for k in ("input", "coco", "split", "rounds", "seed", "shard", "llm", "model",
                                          "config_digest")},
        "baseline": str(baseline),
        "seed": dataset_metrics(seed_samples, coco, seed_info, with_provenance=seed_info is not None),
        "evolved": dataset_metrics(evolved, coco, info, with_provenance=True),
        "provenance": prov,
        "weak_llm_operators": sorted(op for op, a in llm_ops.items() if a["rate"] < LOW_ACCEPTANCE),
    }


# -- plots -----------------------------------------------------------------------------------------------------
def _plots(summary: dict, out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    prov = summary["provenance"]
    seed, evo = summary["seed"], summary["evolved"]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        p = out_dir / f"{name}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths[name] = p

    ops = sorted(prov["volume"])
    rounds = sorted({r for v in prov["volume"].values() for r in v}, key=int)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bottom = [0] * len(ops)
    for r in rounds:
        vals = [prov["volume"][op].get(r, 0) for op in ops]
        ax.bar(ops, vals, bottom=bottom, label=f"round {r}")
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("kept units")
    ax.set_title("Volume per operator and round")
    ax.tick_params(axis="x", rotation=45)
    if rounds:
        ax.legend()
    save(fig, "volume")

    acc = prov["acceptance"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = sorted(acc)
    ax.bar(names, [acc[n]["rate"] for n in names], color="tab:green")
    ax.set_ylim(0, 1)
    ax.set_ylabel("kept / candidates")
    ax.set_title("Acceptance per operator")
    ax.tick_params(axis="x", rotation=45)
    save(fig, "acceptance")

    rej = prov["rejections"]
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.3 * len(rej) + 1)))
    keys = list(rej)[::-1]
    ax.barh(keys, [rej[k] for k in keys], color="tab:red")
    ax.set_xlabel("candidates")
    ax.set_title("Rejection reasons")
    save(fig, "rejections")

    labels = [f"<={e}" for e in HIST_BINS] + [f">{HIST_BINS[-1]}"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, key, title in ((axes[0], "question_words", "Question length"), (axes[1], "answer_words", "Answer length")):
        for shift, name, m in ((-0.2, "seed", seed), (0.2, "evolved", evo)):
            hist = m[key]["hist"]
            total = sum(hist) or 1
            ax.bar([i + shift for i in range(len(hist))], [h / total for h in hist], width=0.4, label=name)
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_xlabel("words")
        ax.set_ylabel("share of units")
        ax.set_title(f"{title} distribution")
        ax.legend()
    save(fig, "lengths")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    letters = ["A", "B", "C", "D"]
    axes[0].bar([i - 0.2 for i in range(4)], [seed["letters"][k] for k in letters], width=0.4, label="seed")
    axes[0].bar([i + 0.2 for i in range(4)], [evo["letters"][k] for k in letters], width=0.4, label="evolved")
    axes[0].set_xticks(range(4), letters)
    axes[0].set_title("Multiple-choice answer letters")
    axes[0].legend()
    axes[1].bar(["seed yes", "seed no", "evolved yes", "evolved no"],
                [seed["yes_no"]["yes"], seed["yes_no"]["no"], evo["yes_no"]["yes"], evo["yes_no"]["no"]],
                color=["tab:blue", "tab:blue", "tab:orange", "tab:orange"])
    axes[1].set_title("Yes / no answers")
    save(fig, "answers")

    counts_s, counts_e = seed["categories"]["counts"], evo["categories"]["counts"]
    top = sorted(set(counts_s) | set(counts_e), key=lambda c: -(counts_e.get(c, 0) + counts_s.get(c, 0)))[:30]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.bar([i - 0.2 for i in range(len(top))], [counts_s.get(c, 0) for c in top], width=0.4, label="seed")
    ax.bar([i + 0.2 for i in range(len(top))], [counts_e.get(c, 0) for c in top], width=0.4, label="evolved")
    ax.set_xticks(range(len(top)), top, rotation=60, ha="right")
    ax.set_ylabel("units mentioning")
    ax.set_title("Category coverage (30 most mentioned)")
    ax.legend()
    save(fig, "coverage")
    return paths


# -- tables ----------------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def side_by_side(summary: dict) -> list[tuple[str, str, str]]:
    s, e = summary["seed"], summary["evolved"]
    rows = [
        ("samples", s["samples"], e["samples"]),
        ("question-answer units", s["units"], e["units"]),
        ("images", s["images"], e["images"]),
        ("formats", s["formats"], e["formats"]),
        ("question words (mean / p90)", f"{s['question_words']['mean']} / {s['question_words']['p90']}",
         f"{e['question_words']['mean']} / {e['question_words']['p90']}"),
        ("answer words (mean / p90)", f"{s['answer_words']['mean']} / {s['answer_words']['p90']}",
         f"{e['answer_words']['mean']} / {e['answer_words']['p90']}"),
    ]
    for n in (1, 2, 3):
        rows.append((f"distinct-{n} (questions)", s["distinct"][f"question_{n}"], e["distinct"][f"question_{n}"]))
    for n in (1, 2):
        rows.append((f"distinct-{n} (answers)", s["distinct"][f"answer_{n}"], e["distinct"][f"answer_{n}"]))
    rows += [
        ("near-duplicate rate (same image)", s["near_duplicate_rate"], e["near_duplicate_rate"]),
        ("yes ratio (yes / yes+no)", s["yes_no"]["yes_ratio"], e["yes_no"]["yes_ratio"]),
        ("answer letters A/B/C/D", "/".join(str(s["letters"][k]) for k in "ABCD"),
         "/".join(str(e["letters"][k]) for k in "ABCD")),
        ("categories covered", f"{s['categories']['covered']} of {s['categories']['of']}",
         f"{e['categories']['covered']} of {e['categories']['of']}"),
        ("CHAIR_i (hallucinated mentions)", s["chair"]["chair_i"], e["chair"]["chair_i"]),
        ("CHAIR_s (answers with one)", s["chair"]["chair_s"], e["chair"]["chair_s"]),
        ("knowledge-use share (the evolved column with its seed units)", s["knowledge_share"], e["knowledge_share"]),
    ]
    return [(k, _fmt(a), _fmt(b)) for k, a, b in rows]


def operator_rows(summary: dict) -> list[tuple[str, ...]]:
    prov = summary["provenance"]
    rounds = sorted({r for v in prov["volume"].values() for r in v}, key=int)
    rows = []
    for op, a in prov["acceptance"].items():
        vol = prov["volume"].get(op, {})
        top = prov["rejections_by_operator"].get(op, {})
        main = ", ".join(f"{k} {v}" for k, v in list(top.items())[:3])
        rows.append((op, str(a["candidates"]), str(a["kept"]), f"{a['rate']:.2f}",
                     " / ".join(str(vol.get(r, 0)) for r in rounds), main or "-"))
    return rows


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def grounding_rows(summary: dict) -> list[tuple[str, ...]]:
    rows = []
    for g, c in summary["provenance"]["grounding"].items():
        ops = ", ".join(f"{op} {n}" for op, n in c["kept_by_operator"].items())
        rows.append((g, str(c["samples"]), str(c["candidates"]), str(c["kept"]), ops or "-"))
    return rows


def write_report(run_dir: str | Path, baseline: str | Path | None = None, coco_dir: str | Path | list[str] | None = None,
                 split: str | None = None, coco: CocoSet | None = None) -> list[Path]:
    run_dir = Path(run_dir)
    summary = build_summary(run_dir, baseline, coco, coco_dir, split)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plots = _plots(summary, run_dir / "report")
    prov = summary["provenance"]
    rounds = sorted({r for v in prov["volume"].values() for r in v}, key=int)
    op_header = ("operator", "candidates", "kept", "acceptance", "kept per round " + "/".join(rounds),
                 "main rejection reasons")
    sbs_header = ("figure", "seed", "evolved")
    ground_header = ("grounding", "input samples", "candidates", "kept", "kept per operator")
    rej_rows = [(k, str(v)) for k, v in prov["rejections"].items()]
    weak = summary["weak_llm_operators"]
    run = summary["run"]
    intro = (f"Run: `{run['input']}` evolved for {run['rounds']} rounds (seed {run['seed']}, LLM `{run['llm']}`"
             f"{', model ' + str(run['model']) if run['model'] else ''}); baseline `{summary['baseline']}`. "
             f"{prov['candidates']} candidates, {prov['kept']} kept after elimination, dedup and balance.")
    weak_text = (f"LLM operators with acceptance below {LOW_ACCEPTANCE:.0%} (the model could not do them well): "
                 + ", ".join(f"`{w}`" for w in weak)) if weak else ""

    md = ["# Instruction data report", "", intro, "", "## Seed vs evolved", "", _md_table(sbs_header,
          side_by_side(summary)), "", "## Operators", "", _md_table(op_header, operator_rows(summary)), ""]
    if weak_text:
        md += [weak_text, ""]
    md += ["## Grounding of the input's images", "", _md_table(ground_header, grounding_rows(summary)), ""]
    md += ["## Rejection reasons", "", _md_table(("reason", "candidates"), rej_rows), ""]
    md += [f"![{name}](report/{p.name})" for name, p in plots.items()]
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    imgs = "".join(f'<figure><img alt="{n}" src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for n, p in plots.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Kanva data report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Instruction data report</h1><p>{html.escape(intro)}</p>
<h2>Seed vs evolved</h2>{_html_table(sbs_header, side_by_side(summary))}
<h2>Operators</h2>{_html_table(op_header, operator_rows(summary))}<p>{html.escape(weak_text)}</p>
<h2>Grounding of the input's images</h2>{_html_table(ground_header, grounding_rows(summary))}
<h2>Rejection reasons</h2>{_html_table(("reason", "candidates"), rej_rows)}
<h2>Plots</h2>{imgs}</body></html>
"""
    html_path = run_dir / "report.html"
    html_path.write_text(page)
    return [md_path, html_path, run_dir / "summary.json"]
