"""LLaVA-Bench (in the wild): open answers graded by a judge model against a reference answer.

Data folder (the release layout): `questions.jsonl` (question_id, image, text, category in
conv/detail/complex), `answers_gpt4.jsonl` (the reference answers: question_id, text), `context.jsonl`
(image, caption: the judge reads the caption instead of the image) and `images/`.

For each question the judge sees the caption, the question, the reference (Assistant 1) and the
candidate (Assistant 2) under its category's rule (`llava_bench_rules.json`, written for Kanva), and
writes the two 1-10 scores on its first line. Per category and overall, score = mean(candidate) /
mean(reference) * 100; the reported figures are the means over the judge runs (3 by default). Each run
is a review file (JSON lines with `question_id`, `category`, `content`, ...) that
`kanva eval score llava-bench --predictions R1 [R2 R3]` re-scores with no data and no judge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign, read_jsonl, row_qid

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
    """(system, user) for one review: the category's rule, then the output format."""
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


def parse_scores(content: str) -> tuple[float, float] | None:
    """The two numbers of the review's first line (commas count as spaces), or None."""
    lines = content.strip().splitlines()
    first = lines[0].replace(",", " ") if lines else ""
    nums = _NUMBER.findall(first)
    if len(nums) != 2:
        return None
    return float(nums[0]), float(nums[1])


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
        judges = sorted({str(r["judge"]) for r in rows if r.get("judge")})
        for r in rows:
            pair = parse_scores(r["content"])
            if pair is None:
                first = r["content"].strip().splitlines()[:1]
                got = first[0] if first else ""
                raise KanvaError(f"{r['_where']}: the review's first line must hold two scores, got {got!r}")
            by_cat.setdefault(category_name(r["category"]), []).append(pair)
        everything = [p for v in by_cat.values() for p in v]
        runs.append(
            {
                "source": src,
                "overall": _ratio(everything),
                "categories": {c: _ratio(v) for c, v in sorted(by_cat.items())},
                "reviews": len(everything),
                "reference_mean": sum(p[0] for p in everything) / len(everything),
                "candidate_mean": sum(p[1] for p in everything) / len(everything),
                "judge": judges,
            }
        )
    cats = sorted({c for r in runs for c in r["categories"]})
    for c in cats:
        lacking = [r["source"] for r in runs if c not in r["categories"]]
        if lacking:
            raise KanvaError(f"{', '.join(lacking)}: no reviews of category {c!r}, which other runs have")
    judge = sorted({j for r in runs for j in r["judge"]})
    return {
        "benchmark": "llava-bench",
        "overall": sum(r["overall"] for r in runs) / len(runs),
        "categories": {c: sum(r["categories"][c] for r in runs) / len(runs) for c in cats},
        "runs": runs,
        "judge": judge[0] if len(judge) == 1 else (judge or "unknown (not recorded in the review files)"),
    }


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
    data: LBData, answers: list[Answer], judge, out_dir: Path, runs: int = 3, retries: int = 2
) -> tuple[list[Path], dict]:
    """Runs the judge `runs` times over the answers, writing (and resuming) one review file per run.

    A missing answer is judged as an empty answer (so it scores as what it is: no answer). A reply
    whose first line lacks two scores is asked again up to `retries` times, then is an error.
    """
    from tqdm import tqdm

    by_qid = {q.qid: i for i, q in enumerate(data.questions)}
    by_q, cov = assign(len(data.questions), answers, lambda a: by_qid.get(a.question_id), lambda i: data.questions[i].qid)
    rule_set = rules()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for run in range(runs):
        path = out_dir / f"reviews_run{run + 1}.jsonl"
        done = {row_qid(r, f"{path}:{n}") for n, r in read_jsonl(path)} if path.is_file() else set()
        files.append(path)
        todo = [(q, a) for q, a in zip(data.questions, by_q) if q.qid not in done]
        with open(path, "a", encoding="utf-8") as f:
            for q, a in tqdm(todo, desc=f"judge run {run + 1}/{runs}", unit="q", disable=not todo):
                system, user = judge_messages(q, a.text if a is not None else "", rule_set)
                for attempt in range(retries + 1):
                    content = judge.review(system, user, seed=run * 1000 + attempt)
                    pair = parse_scores(content)
                    if pair is not None:
                        break
                else:
                    raise KanvaError(
                        f"judge {judge.model!r}: no two scores on the first line for question {q.qid!r} after "
                        f"{retries + 1} tries (last reply starts {content[:80]!r})"
                    )
                row = {
                    "question_id": q.qid,
                    "category": q.category,
                    "content": content,
                    "scores": list(pair),
                    "judge": judge.model,
                    "run": run + 1,
                    "answered": a is not None,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
    return files, cov.as_dict()


def score_llava_bench(review_files: list[Path]) -> dict:
    result = score_reviews([load_reviews(p) for p in review_files], [str(p) for p in review_files])
    return result
