"""`kanva eval score|run|make-synthetic|report`: benchmark scoring, generation, synthetic sets, reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BENCHES = "mme, mmbench, pope, sqa, llava-bench"


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("LLaVA-Bench judge (an OpenAI-compatible endpoint)")
    g.add_argument("--judge-model", help="judge model name, e.g. gpt-4o or a local model served by vLLM")
    g.add_argument("--judge-base-url", help="endpoint, e.g. http://127.0.0.1:8000/v1 (default: api.openai.com)")
    g.add_argument("--judge-api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument("--judge-runs", type=int, default=3, help="judge runs to average (default 3)")
    g.add_argument("--judge-temperature", type=float, default=0.2)
    g.add_argument("--reviews-dir", type=Path, help="where review files go (default: beside the answers)")


def _judge(args):
    if not args.judge_model:
        return None
    from kanva.eval.judge import Judge

    return Judge(args.judge_model, args.judge_base_url, args.judge_api_key, temperature=args.judge_temperature)


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
    )
    print(format_result(result))
    _write_json(result, args.json)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score, run and report benchmarks (MME, MMBench, POPE, ScienceQA, LLaVA-Bench)")
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
        "(plus LLaVA's question file); ScienceQA folder; LLaVA-Bench folder",
    )
    s.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        required=True,
        help="answer file; or MME eval-tool results folder; or LLaVA-Bench review files (one per judge run)",
    )
    s.add_argument("--json", type=Path, help="write the results JSON here")
    s.add_argument("--split", default="test", help="ScienceQA split (default test)")
    _add_judge_args(s)
    s.set_defaults(func=_score)
