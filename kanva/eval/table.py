"""Results dict -> the text table `kanva eval score` prints (the JSON holds every number unrounded)."""

from __future__ import annotations


def _rows(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [title, fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def format_result(r: dict) -> str:
    b = r["benchmark"]
    if "accuracy" not in r and b in ("vqav2", "vizwiz", "textvqa", "gqa"):
        out = f"{b}: not scored here"
    elif b in ("vqav2", "vizwiz", "textvqa"):
        rows = [("accuracy", f"{r['accuracy']:.2f}")] + [(f"answer type: {k}", f"{v:.2f}") for k, v in r["answer_types"].items()]
        out = _rows(f"{b} (percent; min(humans/3, 1) over the 10 leave-one-out subsets; {r['questions']} questions)",
                    rows, ("metric", "acc"))
    elif b == "gqa":
        rows = [("accuracy", f"{r['accuracy']:.2f}"), ("binary", f"{r['binary']:.2f}"), ("open", f"{r['open']:.2f}")]
        rows += [(f"structural: {k}", f"{v:.2f}") for k, v in r["structural"].items()]
        rows += [(f"semantic: {k}", f"{v:.2f}") for k, v in r["semantic"].items()]
        out = _rows(f"GQA (percent, exact match; {r['questions']} balanced questions)", rows, ("metric", "acc"))
    elif b == "seed":
        rows = [("image accuracy", f"{r['image_accuracy']:.2f}", r["questions"])]
        rows += [(f"dimension: {k}", f"{v:.2f}", "") for k, v in r["dimensions"].items()]
        out = _rows("SEED-Bench image part (percent; the answer must be the letter exactly)", rows, ("metric", "acc", "n"))
    elif b in ("muirbench", "mvbench"):
        def ci(row: dict) -> str:
            return f"[{row['ci'][0]:.1f}, {row['ci'][1]:.1f}]"

        rows = [("overall", f"{r['overall']:.2f}", f"[{r['overall_ci'][0]:.1f}, {r['overall_ci'][1]:.1f}]", r["questions"])]
        rows += [(f"kind: {k}", f"{v['accuracy']:.2f}", ci(v), v["questions"]) for k, v in r["kinds"].items()]
        rows += [(f"task: {k}", f"{v['accuracy']:.2f}", ci(v), v["questions"]) for k, v in r["tasks"].items()]
        layout = "MUIRBench" if b == "muirbench" else "MVBench"
        out = _rows(f"{b} (percent right, {layout} layout; 95% bootstrap intervals over questions)", rows,
                    ("metric", "acc", "95% CI", "n"))
        out += (f"\nfailed extraction: {r['failed_extraction']} answers; letters right "
                f"{r['letters']['truth']}, predicted {r['letters']['predicted']}")
    elif b == "mmbench" and "overall" not in r:
        out = "mmbench: not scored here"
    elif b == "mm-vet" and "total" not in r:
        out = "mm-vet: not graded here"
    elif b == "mm-vet":
        # The official grader prints capability and integration tables with 1 decimal.
        caps = list(r["capabilities"])
        head = (*caps, "total", "std", "runs")
        row = (*(f"{r['capabilities'][c]:.1f}" for c in caps), f"{r['total']:.1f}", f"{r['std']:.1f}",
               "[" + ", ".join(f"{t:.1f}" for t in r["runs"]) + "]")
        out = _rows(f"MM-Vet (percent; {r['questions']} questions, {r['grades']['runs']} judge run(s))", [row], head)
        if r["capability_integrations"]:
            rows = [(c, f"{v:.1f}", r["counts"]["capability_integrations"][c]) for c, v in r["capability_integrations"].items()]
            out += "\n" + _rows("capability integrations", rows, ("capabilities", "score", "n"))
        if r.get("judge"):
            j = r["judge"]
            out += (f"\njudge: {j['model']} (versions {', '.join(j['versions']) or 'none'}; prompt {j['prompt_hash']}"
                    f"{'' if j['comparable'] else '; NOT comparable with published scores'})")
        if r.get("judge_failures", {}).get("count"):
            f = r["judge_failures"]
            out += f"\njudge failures: {f['count']} ({'; '.join(f['examples'])})"
    elif b == "mme":
        rows = [
            (s, f"{v:.2f}", f"{r['details'][s]['acc']:.2f}", f"{r['details'][s]['acc_plus']:.2f}", r["details"][s]["other"])
            for s, v in r["subtasks"].items()
        ]
        rows += [("perception (total)", f"{r['perception']:.2f}", "", "", ""),
                 ("cognition (total)", f"{r['cognition']:.2f}", "", "", "")]
        out = _rows("MME (points: 100*acc + 100*acc+ per subtask)", rows, ("subtask", "score", "acc", "acc+", "other"))
    elif b == "pope":
        rows = [
            (s, m["n"], m["tp"], m["fp"], m["tn"], m["fn"], f"{m['accuracy']:.5f}", f"{m['precision']:.5f}",
             f"{m['recall']:.5f}", f"{m['f1']:.5f}", f"{m['yes_ratio']:.5f}")
            for s, m in r["splits"].items()
        ]
        header = ("split", "n", "TP", "FP", "TN", "FN", "acc", "prec", "recall", "F1", "yes")
        out = _rows("POPE (fractions; positive = yes)", rows, header)
        out += f"\nmean F1: {r['mean_f1']:.5f}"
    elif b == "mmbench":
        rows = [("overall (circular)", f"{r['overall']:.2f}"), ("circ0 (first pass only)", f"{r['circ0']:.2f}")]
        rows += [(f"l2: {k}", f"{v:.2f}") for k, v in r["l2"].items()]
        rows += [(f"category: {k}", f"{v:.2f}") for k, v in r["category"].items()]
        out = _rows(
            f"MMBench (percent; CircularEval over {r['questions']} questions, {r['rows']} rows)", rows, ("metric", "acc")
        )
        out += f"\nfailed extraction: {r['failed_extraction']} answers"
    elif b == "sqa":
        rows = [
            ("IMG accuracy", f"{r['img_accuracy']:.2f}", r["img_questions"]),
            ("accuracy (all)", f"{r['accuracy']:.2f}", r["questions"]),
        ]
        out = _rows(f"ScienceQA (percent, split {r['split']})", rows, ("metric", "acc", "n"))
        out += f"\nfailed extraction: {r['failed_extraction']} answers"
    elif b == "llava-bench":
        header = ("category", "score", *(f"run {i + 1}" for i in range(len(r["runs"]))))
        rows = [("overall", f"{r['overall']:.2f}", *(f"{x['overall']:.2f}" for x in r["runs"]))]
        rows += [(c, f"{v:.2f}", *(f"{x['categories'][c]:.2f}" for x in r["runs"])) for c, v in r["categories"].items()]
        out = _rows(f"LLaVA-Bench (percent of the reference; judge: {r['judge']})", rows, header)
        info = r.get("judge_info") or {}
        if info:
            comparable = {True: "LLaVA's rules: comparable", False: "Kanva's rules: NOT comparable with published scores",
                          None: "rules not recorded"}[info.get("comparable")]
            out += f"\njudge versions: {', '.join(info.get('versions') or []) or 'not recorded'}; {comparable}"
        if (r.get("judge_failures") or {}).get("count"):
            f = r["judge_failures"]
            out += f"\njudge failures: {f['count']} ({'; '.join(f['examples'])})"
    else:
        raise ValueError(b)
    if "answers" in r:
        from kanva.eval.answers import Coverage

        out += "\n" + Coverage(**r["answers"]).line()
    if r.get("upload"):
        u = r["upload"]
        out += f"\nupload file: {u['file']} ({u['rows']} rows, {u['missing']} without an answer: left empty)"
    for note in r.get("notes", []):
        out += f"\nnote: {note}"
    return out
