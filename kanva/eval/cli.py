"""`kanva eval score|run|ensemble|make-synthetic|report`: scoring, generation, ensembles, synthetic sets, reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCHES = "mme, mmbench, pope, sqa, llava-bench, vqav2, vizwiz, textvqa, gqa, mm-vet, seed, muirbench, mvbench"


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judge for llava-bench and mm-vet (an OpenAI-compatible endpoint)")
    g.add_argument("--judge-model", help="judge model name, e.g. gpt-4o or a local model served by vLLM")
    g.add_argument("--judge-base-url", help="endpoint, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    g.add_argument("--judge-api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument("--judge-runs", type=int, help="judge runs to average (default 3 for llava-bench, 1 for mm-vet)")
    g.add_argument("--judge-temperature", type=float, default=0.2)
    g.add_argument("--reviews-dir", type=Path, help="where review / grade files go (default: beside the answers)")
    g.add_argument("--judge-cache", type=Path, help="judge reply cache, JSON lines keyed by request (default: "
                   "beside the review / grade files)")
    g.add_argument("--judge-prompt", type=Path, help="mm-vet: the official grading prompt (a text file, or the "
                   "official mm-vet_evaluator.py); without it Kanva's own prompt, marked not comparable")
    g.add_argument("--judge-rules", type=Path, help="llava-bench: LLaVA's rule.json, to judge with LLaVA's request "
                   "(needs --judge-system); without it Kanva's own rules, marked not comparable")
    g.add_argument("--judge-system", help="llava-bench with --judge-rules: the system message of LLaVA's review "
                   "script (llava/eval/eval_gpt_review_bench.py)")


def _judge(args):
    if not args.judge_model:
        return None
    from kanva.eval.judge import Judge

    return Judge(args.judge_model, args.judge_base_url, args.judge_api_key, temperature=args.judge_temperature,
                 cache=args.judge_cache)


def _judge_files(args) -> dict:
    return {"judge_prompt": args.judge_prompt, "judge_rules": args.judge_rules, "judge_system": args.judge_system}


def _write_json(result: dict, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def _score(args) -> int:
    from kanva.eval.score import score
    from kanva.eval.table import format_result

    result = score(
        args.bench,
        args.data,
        args.predictions,
        split=args.split,
        judge=_judge(args),
        judge_runs=args.judge_runs,
        reviews_dir=args.reviews_dir,
        upload=args.upload,
        judge_files=_judge_files(args),
    )
    print(format_result(result))
    _write_json(result, args.json)
    return 0


def _run(args) -> int:
    from kanva.eval.run import run_benchmark
    from kanva.eval.table import format_result

    result = run_benchmark(
        args.bench,
        args.model,
        args.data,
        args.out,
        batch_size=args.batch_size,
        limit=args.limit,
        style=args.prompt_style,
        max_new_tokens=args.max_new_tokens,
        image_root=args.image_root,
        split=args.split,
        device=args.device,
        judge=_judge(args),
        judge_runs=args.judge_runs,
        reviews_dir=args.reviews_dir,
        results_path=args.results,
        judge_files=_judge_files(args),
        share_prefix=args.share_prefix,
    )
    run = result["run"]
    if "benchmark" not in run:  # not the main process of a multi-process run: it merges and reports
        return 0
    qps = f"{run['questions_per_second']:.2f} questions/s" if run["questions_per_second"] else "nothing to generate"
    print(f"{run['generated']} answers generated, {run['resumed']} resumed ({qps}); prompt style {run['prompt_style']}")
    if "answers" in result:
        print(format_result(result))
    for note in result.get("notes", []) if "answers" not in result else []:
        print(f"note: {note}")
    print(f"wrote {args.out} and {run['results']}")
    return 0


def _ensemble(args) -> int:
    from kanva.eval.sqa_ensemble import ensemble_cli

    return ensemble_cli(args)


def _make_synthetic(args) -> int:
    from kanva.eval.synthetic import make_synthetic

    m = make_synthetic(args.world, args.out, split=args.split, seed=args.seed, benchmarks=args.benchmarks.split(","))
    if "images" in m:
        print(f"{m['images']} images of split {m['split']} (seed {m['seed']}) -> {args.out}")
    if "mme" in m:
        print("MME questions: " + ", ".join(f"{k} {v}" for k, v in m["mme"].items()))
    if "mmbench" in m:
        print(f"MMBench: {m['mmbench']['questions']} questions in {m['mmbench']['rows']} circular rows")
    if "pope" in m:
        print("POPE questions: " + ", ".join(f"{k} {v}" for k, v in m["pope"].items()))
    for b, what in (("muirbench", "sets"), ("mvbench", "clips")):
        if b in m:
            print(f"{b}: {m[b]['questions']} questions from {m[b][what]} {what} of split {m['split']} -> {m[b]['file']}: "
                  + ", ".join(f"{k} {v}" for k, v in m[b]["tasks"].items()))
    for note in m["notes"]:
        print(f"note: {note}")
    return 0


def _report(args) -> int:
    from kanva.eval.report import write_report

    written = write_report(args.runs, args.out)
    print(f"wrote {written['markdown']}, {written['html']} and {len(written) - 2} chart(s) in {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score, run and report benchmarks (MME, MMBench, POPE, ScienceQA, LLaVA-Bench, VQA family, GQA, ...)")
    sub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 1)[1])

    s = sub.add_parser(
        "score",
        help="score an answer file",
        description="Score answers (LLaVA answer format: JSON lines with question_id and text) against a "
        "benchmark's official files and print a table; --json writes every metric.",
    )
    s.add_argument("bench", metavar="BENCH", help=BENCHES)
    s.add_argument(
        "--data",
        type=Path,
        nargs="+",
        help="benchmark data: MME folder/question file; MMBench TSV; POPE annotation files or their folder "
        "(plus LLaVA's question file); ScienceQA folder; LLaVA-Bench folder; VQAv2 questions [+ annotations]; "
        "VizWiz val.json/test.json; TextVQA question file [+ Rosetta OCR file]; GQA question file; MM-Vet folder; "
        "SEED-Bench.json; MUIRBench-layout JSON (or its folder); MVBench folder (json/<task>.json)",
    )
    s.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        required=True,
        help="answer file; or MME eval-tool results folder; or LLaVA-Bench review files (one per judge run); "
        "or MM-Vet's grade file (the official grader's format)",
    )
    s.add_argument("--json", type=Path, help="write the results JSON here")
    s.add_argument("--split", default="test", help="ScienceQA split (default test)")
    s.add_argument("--upload", type=Path, help="also write the evaluation server's file here (vqav2, vizwiz, textvqa, gqa: JSON; "
                   "mmbench: the .xlsx submission with every circular pass; mm-vet: the grader's {id: answer} JSON)")
    _add_judge_args(s)
    s.set_defaults(func=_score)

    r = sub.add_parser(
        "run",
        help="answer a benchmark with a model (batched greedy), then score",
        description="Generate answers with batched greedy decoding, append them to ANSWERS as they come "
        "(a rerun resumes, skipping answered ids), then score and write ANSWERS' .results.json.",
    )
    r.add_argument("bench", metavar="BENCH", help=BENCHES)
    r.add_argument("--model", type=Path, required=True, help="model directory (kanva model build / kanva train)")
    r.add_argument("--data", type=Path, nargs="+", required=True, help="benchmark data, as for `score`")
    r.add_argument("--out", type=Path, required=True, help="answer file (JSON lines) to write or resume")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--no-share-prefix", dest="share_prefix", action="store_false",
                   help="prefill every question's prompt whole (default: the questions about one image, batched "
                   "together, compute its prompt prefix once; the same answers up to float noise)")
    r.add_argument("--limit", type=int, help="only the first N questions (whole MME images / MMBench groups)")
    r.add_argument("--prompt-style", choices=("llava", "lmms-eval"), default="llava")
    r.add_argument("--max-new-tokens", type=int, help="default 128 (1024 for llava-bench), as LLaVA")
    r.add_argument("--image-root", type=Path, help="folder of the images when not beside the data")
    r.add_argument("--split", default="test", help="ScienceQA split (default test)")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--results", type=Path, help="results JSON (default: ANSWERS with .results.json)")
    _add_judge_args(r)
    r.set_defaults(func=_run)

    m = sub.add_parser(
        "make-synthetic",
        help="MME/MMBench/POPE-format sets (and MUIRBench/MVBench-layout multi-image and video sets) from a world's held-out split",
        description="Write MME (template layout), MMBench (TSV, circular rows) and POPE (3 annotation files) "
        "sets whose answers follow from the world's annotations and the knowledge base; with --benchmarks also "
        "multi-image (MUIRBench layout, from the split's sets) and video (MVBench layout, from its clips) "
        "multiple choice.",
    )
    m.add_argument("--world", type=Path, required=True, help="world folder (kanva world generate)")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--split", default="test", help="world split to draw images from (default test)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--benchmarks", default="mme,mmbench,pope",
                   help="which sets, comma-separated (default mme,mmbench,pope): also muirbench (multi-image multiple "
                   "choice from the split's sets) and mvbench (video multiple choice from its clips)")
    m.set_defaults(func=_make_synthetic)

    en = sub.add_parser(
        "ensemble",
        help="combine two ScienceQA answer files, a judge settling disagreements (LLaVA's GPT-4 ensemble)",
        description="Where two answer files pick the same option it stands; where they differ the judge is asked "
        "with both answers in view. Writes the combined answer file and scores it (see docs/eval.md).",
    )
    en.add_argument("bench", choices=("sqa",))
    en.add_argument("--data", type=Path, required=True, help="ScienceQA folder (problems.json, pid_splits.json)")
    en.add_argument("--predictions", type=Path, nargs="+", required=True, help="the two answer files")
    en.add_argument("--judge-model", required=True)
    en.add_argument("--judge-base-url")
    en.add_argument("--judge-api-key")
    en.add_argument("--judge-cache", type=Path, help="judge reply cache (default: beside --out)")
    en.add_argument("--out", type=Path, help="combined answer file (default: A_ensemble.jsonl)")
    en.add_argument("--split", default="test")
    en.add_argument("--json", type=Path, help="write the results JSON here")
    en.set_defaults(func=_ensemble)

    rp = sub.add_parser(
        "report",
        help="compare runs side by side (markdown + HTML, bar charts)",
        description="Compare results JSONs (from `eval run`, or `eval score --json`) side by side per benchmark.",
    )
    rp.add_argument("runs", metavar="RUN", type=Path, nargs="+", help="results JSON files")
    rp.add_argument("--out", type=Path, required=True, help="report folder")
    rp.set_defaults(func=_report)
