"""The quickstart's scores with confidence: each model's per-unit outcomes on the synthetic benchmarks, from
kanva/eval's answer matching, parsing and formulas, resampled (bootstrap over images for MME, questions for
POPE, circular groups for MMBench) for 95% intervals and a paired interval of the difference of each compared
pair of models. `units` maps each model to its outcomes, the first model's units being the reference set of
questions; `pairs` lists (a, b) for the differences a - b, keyed "a - b".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kanva.eval.answers import Answer, load_answers
from kanva.eval.bootstrap import accuracy_ci, percentile_interval
from kanva.eval.mmbench import extract_choice, load_mmbench, match_mmbench
from kanva.eval.mme import COGNITION, KANVA_COGNITION, PERCEPTION, load_mme, match_mme, mme_outcomes, points
from kanva.eval.pope import load_pope, match_pope, pope_metrics, pope_prediction


def load_model_answers(path: Path) -> list[Answer]:
    return load_answers(path) if path.is_file() else []


# ---- per-unit correctness, from kanva/eval's matching and parsing -----------------------------------


def mme_units(bench: Path, answers: list[Answer]) -> dict[str, dict[str, list]]:
    """subtask -> {image: [correct per question]}; a missing answer is wrong."""
    data = load_mme(bench)
    return mme_outcomes(data, match_mme(data, answers)[0])


def pope_units(files: list[Path], answers: list[Answer]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (labels yes?, predictions yes?)."""
    data = load_pope(files)
    by_q, _ = match_pope(data, answers)
    out: dict[str, tuple[list, list]] = {}
    for q, a in zip(data.questions, by_q):
        lab, pred = out.setdefault(q.split, ([], []))
        lab.append(q.label == "yes")
        pred.append(pope_prediction(q, a) == "yes")
    return {k: (np.array(a), np.array(b)) for k, (a, b) in out.items()}


def mmbench_units(tsv: Path, answers: list[Answer]) -> dict[int, tuple[str, bool, bool]]:
    """group -> (category, circular correct, first pass correct), over the groups that were asked."""
    data = load_mmbench(tsv)
    by_q, _ = match_mmbench(data, answers)
    groups: dict[int, list] = {}
    for r, a in sorted(zip(data.rows, by_q), key=lambda ra: ra[0].index):
        ok = a is not None and extract_choice(a.text, r.options) == r.answer
        groups.setdefault(r.group, [r.category, [], False])[1].append(ok)
        groups[r.group][2] |= a is not None
    return {g: (cat, all(oks), oks[0]) for g, (cat, oks, asked) in groups.items() if asked}


# ---- scores with bootstrap --------------------------------------------------------------------


def _mme_score(per_image: list[list[bool]]) -> float:
    return points(per_image) if per_image else float("nan")


def pair_key(a: str, b: str) -> str:
    return f"{a} - {b}"


def mme_table(units: dict[str, dict], n_boot: int, seed: int, pairs: list[tuple[str, str]] = ()) -> dict:
    """Per subtask for each model: score, CI, n questions; the paired difference of each pair, with its CI."""
    rng = np.random.default_rng(seed)
    ref = units[next(iter(units))]
    subtasks = [s for s in PERCEPTION + COGNITION + KANVA_COGNITION if s in ref]
    rows, boot_perc = {}, {m: np.zeros(n_boot) for m in units}
    for s in subtasks:
        images = sorted(ref[s])
        idx = rng.integers(0, len(images), size=(n_boot, len(images)))
        row = {"questions": sum(len(ref[s][i]) for i in images), "images": len(images), "deltas": {}}
        boots = {}
        for m in units:
            vals = [units[m][s].get(i, [False, False]) for i in images]
            row[m] = _mme_score(vals)
            boots[m] = np.array([_mme_score([vals[j] for j in b]) for b in idx])
            row[f"{m}_ci"] = percentile_interval(boots[m])
            if s in PERCEPTION:
                boot_perc[m] += boots[m]
        for a, b in pairs:
            row["deltas"][pair_key(a, b)] = {"delta": row[a] - row[b], "ci": percentile_interval(boots[a] - boots[b])}
        rows[s] = row
    perc = {m: sum(rows[s][m] for s in subtasks if s in PERCEPTION) for m in units}
    perc_max = 200 * sum(s in PERCEPTION for s in subtasks)
    perc_deltas = {pair_key(a, b): {"delta": perc[a] - perc[b], "ci": percentile_interval(boot_perc[a] - boot_perc[b])}
                   for a, b in pairs}
    return {"subtasks": rows, "perception": perc,
            "perception_ci": {m: percentile_interval(boot_perc[m]) for m in units},
            "perception_max": perc_max, "perception_deltas": perc_deltas}


def _f1(lab: np.ndarray, pred: np.ndarray) -> float:
    return pope_metrics(int(np.sum(lab & pred)), int(np.sum(~lab & pred)), int(np.sum(~lab & ~pred)),
                        int(np.sum(lab & ~pred)))["f1"]


def pope_table(units: dict[str, dict], n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    out = {}
    mean_boot = {m: np.zeros(n_boot) for m in units}
    ref = units[next(iter(units))]
    splits = list(ref)
    for sp in splits:
        lab = ref[sp][0]
        idx = rng.integers(0, len(lab), size=(n_boot, len(lab)))
        row = {"questions": int(len(lab))}
        for m in units:
            lab_m, pred = units[m][sp]
            row[m] = {"f1": _f1(lab_m, pred), "accuracy": float(np.mean(lab_m == pred)),
                      "yes_ratio": float(np.mean(pred))}
            b = np.array([_f1(lab_m[i], pred[i]) for i in idx])
            row[m]["f1_ci"] = percentile_interval(b)
            mean_boot[m] += b / len(splits)
        out[sp] = row
    means = {m: float(np.mean([out[sp][m]["f1"] for sp in splits])) for m in units}
    yes = {m: float(np.mean([out[sp][m]["yes_ratio"] for sp in splits])) for m in units}
    return {"splits": out, "mean_f1": means, "mean_f1_ci": {m: percentile_interval(mean_boot[m]) for m in units},
            "yes_ratio": yes}


def mmbench_table(units: dict[str, dict], n_boot: int, seed: int) -> dict:
    ref = units[next(iter(units))]
    groups = sorted(ref)
    out = {"questions": len(groups)}
    for m in units:
        circ = np.array([units[m][g][1] for g in groups])
        first = np.array([units[m][g][2] for g in groups])
        # the same seed for every model: the same resampled groups, as a paired comparison needs
        out[m] = {"circular": 100 * float(circ.mean()), "circular_ci": accuracy_ci(circ, n_boot, seed + 2),
                  "circ0": 100 * float(first.mean())}
    cats = sorted({ref[g][0] for g in groups})
    out["categories"] = {
        c: {"questions": sum(ref[g][0] == c for g in groups),
            **{m: 100 * float(np.mean([units[m][g][1] for g in groups if units[m][g][0] == c])) for m in units}}
        for c in cats
    }
    return out
