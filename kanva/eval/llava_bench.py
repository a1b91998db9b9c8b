"""LLaVA-Bench (in the wild): open answers graded by a judge model against a reference answer.

Data folder (the release layout): `questions.jsonl` (question_id, image, text, category in
conv/detail/complex), `answers_gpt4.jsonl` (the reference answers: question_id, text), `context.jsonl`
(image, caption: the judge reads the caption instead of the image) and `images/`.

For each question the judge sees the caption, the question, the reference (Assistant 1) and the
candidate (Assistant 2) under its category's rule, and writes the two 1-10 scores on its first line.
Two request layouts:

- official (`--judge-rules rule.json`, LLaVA's rule file, which the user has with the benchmark, plus
  `--judge-system TEXT`, the one-line system message of LLaVA's review script): the user message is
  "[Context]", caption, "[Question]", question, "[<role> 1]", reference, "[End of <role> 1]", the same
  for 2, then "[System]" and the rule's prompt of category `llava_bench_<category>`, blocks separated by
  blank lines as LLaVA's script joins them; the first line of the reply, commas made spaces, split on
  single spaces, must be exactly two numbers (LLaVA's parse). Scores compare with published ones.
- Kanva's own rules (`llava_bench_rules.json`), marked `comparable: false` in the results.

Per category and overall, score = mean(candidate) / mean(reference) * 100; the reported figures are
the means over the judge runs (3 by default). A judge call that fails, or a reply without two scores
(Kanva's rules: after 2 more tries), is counted per run and reported, and that question is left out
of the run's means, never given a default score. Each run is a review file (JSON lines with
`question_id`, `category`, `content`, `scores`, ...) that `kanva eval score llava-bench --predictions
R1 [R2 R3]` re-scores with no data and no judge (LLaVA's review files too: their `tuple` [-1, -1]
marks a failed parse, counted as such).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_json, read_jsonl, row_qid

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class LBQuestion:
    qid: str
    image: str
    question: str
    category: str
    reference: str
    caption: str
    where: str


@dataclass
class LBData:
    questions: list[LBQuestion]
    root: Path


def _str(row: dict, key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str):
        raise KanvaError(f"{where}: needs a string {key!r}")
    return v


def load_llava_bench(root: Path) -> LBData:
    root = Path(root)
    if not root.is_dir():
        raise KanvaError(f"{root}: LLaVA-Bench data must be a folder with questions.jsonl, answers_gpt4.jsonl, context.jsonl")
    refs = {}
    for n, row in read_jsonl(root / "answers_gpt4.jsonl"):
        where = f"{root / 'answers_gpt4.jsonl'}:{n}"
        refs[row_qid(row, where)] = _str(row, "text", where)
    captions = {}
    for n, row in read_jsonl(root / "context.jsonl"):
        where = f"{root / 'context.jsonl'}:{n}"
        captions[_str(row, "image", where)] = _str(row, "caption", where)
    qs, seen = [], set()
    for n, row in read_jsonl(root / "questions.jsonl"):
        where = f"{root / 'questions.jsonl'}:{n}"
        qid = row_qid(row, where)
        if qid in seen:
            raise KanvaError(f"{where}: duplicate question_id {qid!r}")
        seen.add(qid)
        image = _str(row, "image", where)
        if qid not in refs:
            raise KanvaError(f"{where}: question {qid!r} has no reference answer in answers_gpt4.jsonl")
        if image not in captions:
            raise KanvaError(f"{where}: image {image!r} has no caption in context.jsonl")
        text, category = _str(row, "text", where), _str(row, "category", where)
        qs.append(LBQuestion(qid, image, text, category, refs[qid], captions[image], where))
    return LBData(qs, root)


def rules() -> dict:
    return json.loads(resources.files("kanva.eval").joinpath("llava_bench_rules.json").read_text(encoding="utf-8"))


def category_name(raw: str) -> str:
    """Review files name categories "llava_bench_conv" (LLaVA's) or "conv" (ours): both mean "conv"."""
    return raw.removeprefix("llava_bench_")


def judge_messages(q: LBQuestion, candidate: str, rule_set: dict) -> tuple[str, str]:
    """(system, user) for one review under Kanva's rules: the category's rule, then the output format."""
    cat = category_name(q.category)
    if cat not in rule_set["categories"]:
        raise KanvaError(f"{q.where}: no judge rule for category {q.category!r} (have {', '.join(rule_set['categories'])})")
    user = (
        f"[Image description]\n{q.caption}\n\n[Question]\n{q.question}\n\n"
        f"[Assistant 1]\n{q.reference}\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{candidate}\n[End of Assistant 2]\n\n"
        f"[Instructions]\n{rule_set['categories'][cat]}\n{rule_set['format']}"
    )
    return rule_set["system"], user


def load_official_rules(path: Path) -> dict:
    """LLaVA's rule.json: {category: {"role", "prompt"}}; checked per category when used."""
    path = Path(path)
    obj = read_json(path, "rule file")
    if not isinstance(obj, dict):
        raise KanvaError(f"{path}: a rule file is a JSON object of categories")
    return {"_path": str(path), **obj}


def official_messages(q: LBQuestion, candidate: str, rule_file: dict, system: str) -> list[dict]:
    """The request as LLaVA's review script builds it (see the module docstring)."""
    key = "llava_bench_" + category_name(q.category)
    rule = rule_file.get(key)
    if not isinstance(rule, dict) or not isinstance(rule.get("role"), str) or not isinstance(rule.get("prompt"), str):
        raise KanvaError(f"{rule_file['_path']}: no rule {key!r} with string 'role' and 'prompt' (for {q.where})")
    role, prompt = rule["role"], rule["prompt"]
    user = "".join([
        f"[Context]\n{q.caption}\n\n",
        f"[Question]\n{q.question}\n\n",
        f"[{role} 1]\n{q.reference}\n\n[End of {role} 1]\n\n",
        f"[{role} 2]\n{candidate}\n\n[End of {role} 2]\n\n",
        f"[System]\n{prompt}\n\n",
    ])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_scores(content: str) -> tuple[float, float] | None:
    """Kanva's rules: the two numbers of the review's first line (commas count as spaces), or None."""
    lines = content.strip().splitlines()
    first = lines[0].replace(",", " ") if lines else ""
    nums = _NUMBER.findall(first)
    if len(nums) != 2:
        return None
    return float(nums[0]), float(nums[1])


def parse_scores_official(content: str) -> tuple[float, float] | None:
    """LLaVA's parse: first line, commas -> spaces, split on single spaces, exactly two numbers."""
    parts = content.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def _row_scores(r: dict) -> tuple[float, float] | None:
    """A review row's scores: as the judging decided (`scores`), LLaVA's `tuple` ([-1, -1] = failed), or parsed."""
    for key in ("scores", "tuple"):
        v = r.get(key)
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            return None if key == "tuple" and list(v) == [-1, -1] else (float(v[0]), float(v[1]))
    return parse_scores(r["content"])


def _ratio(pairs: list[tuple[float, float]]) -> float:
    ref = sum(p[0] for p in pairs) / len(pairs)
    cand = sum(p[1] for p in pairs) / len(pairs)
    if ref == 0:
        raise KanvaError("the judge gave the reference answers a mean score of 0: the relative score is undefined")
    return 100 * cand / ref


def score_reviews(reviews: list[list[dict]], sources: list[str]) -> dict:
    """Scores judge runs (each a list of review rows with `category`, `content`, `_where`)."""
    runs = []
    for rows, src in zip(reviews, sources):
        if not rows:
            raise KanvaError(f"{src}: no reviews")
        by_cat: dict[str, list[tuple[float, float]]] = {}
        failed = []
        for r in rows:
            pair = _row_scores(r)
            if pair is None:
                failed.append(r["_where"])
                continue
            by_cat.setdefault(category_name(r["category"]), []).append(pair)
        everything = [p for v in by_cat.values() for p in v]
        if not everything:
            raise KanvaError(f"{src}: no review holds two scores ({len(failed)} unparsable, e.g. {failed[0]})")
        runs.append(
            {
                "source": src,
                "overall": _ratio(everything),
                "categories": {c: _ratio(v) for c, v in sorted(by_cat.items())},
                "reviews": len(everything),
                "unparsable": len(failed),
                "unparsable_examples": failed[:3],
                "reference_mean": sum(p[0] for p in everything) / len(everything),
                "candidate_mean": sum(p[1] for p in everything) / len(everything),
                "judge": sorted({str(r["judge"]) for r in rows if r.get("judge")}),
                "versions": sorted({str(r["judge_version"]) for r in rows if r.get("judge_version")}),
                "rules": sorted({str(r["rules"]) for r in rows if r.get("rules")}),
            }
        )
    cats = sorted({c for r in runs for c in r["categories"]})
    for c in cats:
        lacking = [r["source"] for r in runs if c not in r["categories"]]
        if lacking:
            raise KanvaError(f"{', '.join(lacking)}: no reviews of category {c!r}, which other runs have")
    judge = sorted({j for r in runs for j in r["judge"]})
    rules_used = sorted({x for r in runs for x in r["rules"]})
    official = bool(rules_used) and all(x.startswith("official") for x in rules_used)
    unparsable = sum(r["unparsable"] for r in runs)
    result = {
        "benchmark": "llava-bench",
        "overall": sum(r["overall"] for r in runs) / len(runs),
        "categories": {c: sum(r["categories"][c] for r in runs) / len(runs) for c in cats},
        "runs": runs,
        "judge": judge[0] if len(judge) == 1 else (judge or "unknown (not recorded in the review files)"),
        "judge_info": {
            "versions": sorted({v for r in runs for v in r["versions"]}),
            "rules": rules_used or ["unknown (LLaVA's or older review files)"],
            "prompt_hash": [x.split(":", 1)[1] for x in rules_used],
            "comparable": official or (None if not rules_used else False),
        },
        "judge_failures": {"count": unparsable, "examples": [e for r in runs for e in r["unparsable_examples"]][:3]},
        "notes": [],
    }
    if unparsable:
        result["notes"].append(f"{unparsable} reviews without two scores are left out of their run's means (not defaulted)")
    if rules_used and not official:
        result["notes"].append("judged with Kanva's own rules: not comparable with published LLaVA-Bench scores "
                               "(judge with --judge-rules rule.json --judge-system TEXT for that)")
    return result


def load_reviews(path: Path) -> list[dict]:
    rows = []
    for n, row in read_jsonl(Path(path)):
        where = f"{path}:{n}"
        for key in ("category", "content"):
            if not isinstance(row.get(key), str):
                raise KanvaError(f"{where}: a review needs a string {key!r}")
        rows.append({**row, "_where": where})
    return rows


def is_review_file(path: Path) -> bool:
    """Review rows carry the judge's `content`; answer rows carry `text`."""
    for _, row in read_jsonl(Path(path)):
        return "content" in row and "text" not in row
    return False


def judge_answers(
    data: LBData,
    answers: list[Answer],
    judge,
    out_dir: Path,
    runs: int = 3,
    retries: int = 2,
    rules_file: Path | None = None,
    system: str | None = None,
) -> tuple[list[Path], dict]:
    """Runs the judge `runs` times over the answers, writing (and resuming) one review file per run.

    A missing answer is judged as an empty answer (so it scores as what it is: no answer). Under
    Kanva's rules a reply without two scores is asked again up to `retries` times; then, like a failed
    call, it is recorded in `failures` (returned in the coverage dict) and no review row is written, so
    a rerun asks again where the call failed (an unusable reply is cached, so a rerun reproduces it).
    Replies are cached in OUT_DIR/judge_cache.jsonl unless the judge has a cache.
    """
    from tqdm import tqdm

    from kanva.eval.judge import JudgeError, ask_parsed, prompt_hash

    if rules_file is not None:
        if not system:
            raise KanvaError("llava-bench: --judge-rules needs --judge-system, the one-line system message of LLaVA's "
                             "review script (llava/eval/eval_gpt_review_bench.py), to build its request")
        official = load_official_rules(rules_file)
        rules_tag = "official:" + prompt_hash(json.dumps(official, sort_keys=True), system)
        parse = parse_scores_official
        retries = 0  # LLaVA's script asks once per question
    else:
        rule_set = rules()
        rules_tag = "kanva:" + prompt_hash(json.dumps(rule_set, sort_keys=True))
        parse = parse_scores
    by_qid = {q.qid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_qid.get(a.question_id), lambda i: data.questions[i].qid)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if getattr(judge, "cache", None) is None and hasattr(judge, "use_cache"):
        judge.use_cache(out_dir / "judge_cache.jsonl")
    files, failures = [], []
    for run in range(runs):
        path = out_dir / f"reviews_run{run + 1}.jsonl"
        done = {row_qid(r, f"{path}:{n}") for n, r in read_jsonl(path)} if path.is_file() else set()
        files.append(path)
        todo = [(q, a) for q, a in zip(data.questions, by_q) if q.qid not in done]
        with open(path, "a", encoding="utf-8") as f:
            for q, a in tqdm(todo, desc=f"judge run {run + 1}/{runs}", unit="q", disable=not todo):
                candidate = a.text if a is not None else ""
                if rules_file is not None:
                    messages = official_messages(q, candidate, official, system)
                else:
                    sys_msg, user = judge_messages(q, candidate, rule_set)
                    messages = [{"role": "system", "content": sys_msg}, {"role": "user", "content": user}]
                max_tokens = 1024 if rules_file is not None else None
                try:
                    reply, pair = ask_parsed(judge, messages, parse, [
                        {"seed": run * 1000 + attempt, "max_tokens": max_tokens} for attempt in range(retries + 1)])
                except JudgeError as e:
                    failures.append(f"run {run + 1}, question {q.qid}: {e}")
                    continue
                if pair is None:
                    failures.append(f"run {run + 1}, question {q.qid}: no two scores on the first line "
                                    f"(reply starts {reply.content[:60]!r})")
                    continue
                row = {
                    "question_id": q.qid,
                    "category": q.category,
                    "content": reply.content,
                    "scores": list(pair),
                    "judge": judge.model,
                    "judge_version": reply.version,
                    "rules": rules_tag,
                    "run": run + 1,
                    "answered": a is not None,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
    out = cov.as_dict()
    out["judge_failures"] = failures
    return files, out


def score_llava_bench(review_files: list[Path], failures: list[str] | None = None) -> dict:
    """Scores review files; `failures` are judge calls of this session that left no review row."""
    result = score_reviews([load_reviews(p) for p in review_files], [str(p) for p in review_files])
    if failures:
        jf = result["judge_failures"]
        jf["count"] += len(failures)
        jf["examples"] = (failures + jf["examples"])[:3]
        result["notes"].append(f"{len(failures)} judge calls failed or gave no scores; those questions are left out "
                               "of their run's means (not defaulted); a rerun asks again where a call failed")
    return result


def reviews_dir_for(answers_path: Path, reviews_dir: Path | None = None) -> Path:
    """Where reviews of an answer file go: `reviews_dir`, else <answers>_reviews beside the answers."""
    return Path(reviews_dir) if reviews_dir else Path(answers_path).with_name(Path(answers_path).stem + "_reviews")


def judge_and_score(data: LBData, answers: list[Answer], judge, out_dir: Path, runs: int | None = None,
                    judge_rules: Path | None = None, judge_system: str | None = None, **_) -> dict:
    """Judges (resuming the review files in `out_dir`) and scores; the results record the judge."""
    files, coverage = judge_answers(data, answers, judge, out_dir, runs=runs or 3, rules_file=judge_rules,
                                    system=judge_system)
    failures = coverage.pop("judge_failures")
    result = score_llava_bench(files, failures)
    result.update(answers=coverage, judge=judge.model)
    return result
