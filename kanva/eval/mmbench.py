"""MMBench: multiple choice from a TSV, scored with CircularEval and a judge-free extraction.

The TSV has columns `index, question, hint, A, B, C, D, answer, category, l2-category, image` (image
base64) and more; `hint` and options may be NaN, "nan" or empty, and such an option does not exist.
Circular passes are rows of their own whose index is the base index + k * 1000000 (the file ships
them; we never make rotations, since some questions have fewer passes than options). A question is
right only if every row of its group (`index % 1000000`) is right; `circ0` is the accuracy over the
first pass only (index < 1000000), labelled as such.

Extraction (no judge): the answer is exactly an option letter; else exactly one option letter stands
as a token once punctuation is replaced by spaces; else exactly one option's text is contained in the
answer (case-insensitive); else it is wrong. Scoring needs no images.
"""

from __future__ import annotations

import csv
import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, Coverage, assign, qid_str

CIRCULAR = 1_000_000
LETTERS = tuple(string.ascii_uppercase)
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def _missing(v: str | None) -> bool:
    """NaN as written by pandas (empty field) or as the string "nan"."""
    return v is None or v.strip() == "" or v.strip().lower() == "nan"


@dataclass(frozen=True)
class MMBRow:
    index: int
    question: str
    hint: str | None
    options: dict[str, str]  # letter -> text, only the options that exist, in letter order
    answer: str | None  # letter; None in a test split without answers
    category: str
    l2: str | None
    image: str  # base64 (resolved when the TSV refers to another row's image by index)
    where: str

    @property
    def group(self) -> int:
        return self.index % CIRCULAR


@dataclass
class MMBData:
    rows: list[MMBRow]
    source: str
    columns: list[str] = field(default_factory=list)


def _read_tsv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    # Base64 images are far larger than csv's default field limit.
    csv.field_size_limit(2**31 - 1)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise KanvaError(f"{path}: empty TSV") from None
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    return header, rows


def load_mmbench(path: Path) -> MMBData:
    """Reads an MMBench TSV; errors name file, line and index."""
    path = Path(path)
    if not path.is_file():
        raise KanvaError(f"{path}: no such file")
    header, raw = _read_tsv(path)
    # Column names vary in case across releases ("l2-category" / "L2-category").
    col = {h.strip().lower(): i for i, h in enumerate(header)}
    for need in ("index", "question", "category", "a", "b"):
        if need not in col:
            raise KanvaError(f"{path}: TSV has no {need!r} column (columns: {', '.join(header)})")
    letters = [c for c in LETTERS if c.lower() in col]
    rows: list[MMBRow] = []
    seen: dict[int, str] = {}
    images: dict[int, str] = {}
    for line, r in raw:
        where = f"{path}:{line}"
        if len(r) != len(header):
            raise KanvaError(
                f"{where}: {len(r)} fields, header has {len(header)} (a tab or newline inside a field must be quoted)"
            )

        def get(name: str) -> str | None:
            i = col.get(name)
            return r[i] if i is not None else None

        try:
            index = int(float(get("index")))
        except ValueError:
            raise KanvaError(f"{where}: index {get('index')!r} is not an integer") from None
        where = f"{where} (index {index})"
        if index in seen:
            raise KanvaError(f"{where}: duplicate index (first at {seen[index]})")
        seen[index] = where
        options = {c: get(c.lower()).strip() for c in letters if not _missing(get(c.lower()))}
        if len(options) < 2:
            raise KanvaError(f"{where}: fewer than two options")
        answer = get("answer")
        answer = None if _missing(answer) else answer.strip()
        if answer is not None and answer not in options:
            raise KanvaError(f"{where}: answer {answer!r} is not one of the options {', '.join(options)}")
        hint = get("hint")
        image = get("image") or ""
        images[index] = image
        rows.append(
            MMBRow(
                index=index,
                question=get("question") or "",
                hint=None if _missing(hint) else hint,
                options=options,
                answer=answer,
                category=get("category") or "",
                l2=None if _missing(get("l2-category")) else get("l2-category"),
                image=image,
                where=where,
            )
        )
    # Released TSVs store each image once: other rows hold the index of the row with the data (a short
    # digit string, never valid base64 image data).
    resolved = []
    for row in rows:
        img = row.image.strip()
        if img.isdigit() and len(img) <= 64:
            target = images.get(int(img), "").strip()
            if not target or (target.isdigit() and len(target) <= 64):
                raise KanvaError(f"{row.where}: image refers to row {img}, which holds no image data")
            row = MMBRow(**{**row.__dict__, "image": target})
        resolved.append(row)
    return MMBData(resolved, str(path), header)


def extract_choice(answer: str, options: dict[str, str]) -> str | None:
    """The option letter an answer picks, or None (wrong). See the module docstring for the rules."""
    s = answer.strip()
    if s in options:
        return s
    tokens = set(s.translate(_PUNCT).split())
    letters = [c for c in options if c in tokens]
    if len(letters) == 1:
        return letters[0]
    low = s.lower()
    contained = [c for c, text in options.items() if text.strip().lower() and text.strip().lower() in low]
    if len(contained) == 1:
        return contained[0]
    return None


def match_mmbench(data: MMBData, answers: list[Answer]) -> tuple[list[Answer | None], Coverage]:
    """Each row's answer (None: missing), by the row's index (an answer's question_id)."""
    by_index = {r.index: i for i, r in enumerate(data.rows)}

    def locate(a: Answer) -> int | None:
        try:
            return by_index.get(int(float(a.question_id)))
        except ValueError:
            return None

    return assign(len(data.rows), answers, locate, lambda i: qid_str(data.rows[i].index))


def score_mmbench(data: MMBData, answers: list[Answer]) -> dict:
    """CircularEval accuracy overall, per l2-category and per category (percent), and circ0."""
    if not data.rows:
        raise KanvaError(f"{data.source}: no questions")
    missing_gt = [r for r in data.rows if r.answer is None]
    if missing_gt:
        raise KanvaError(f"{missing_gt[0].where}: no ground-truth 'answer' (a test split cannot be scored locally: "
                         "`kanva eval score mmbench --upload FILE.xlsx` writes the official submission)")
    by_q, cov = match_mmbench(data, answers)
    right = []
    failed = 0
    for r, a in zip(data.rows, by_q):
        choice = extract_choice(a.text, r.options) if a is not None else None
        failed += a is not None and choice is None
        right.append(choice == r.answer)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(data.rows):
        groups[r.group].append(i)
    group_ok = {g: all(right[i] for i in idx) for g, idx in groups.items()}
    # A group's labels come from its first pass (lowest index).
    head = {g: data.rows[min(idx, key=lambda i: data.rows[i].index)] for g, idx in groups.items()}

    def acc_by(key) -> dict[str, float]:
        tally: dict[str, list[bool]] = defaultdict(list)
        for g, ok in group_ok.items():
            k = key(head[g])
            if k is not None:
                tally[k].append(ok)
        return {k: 100 * sum(v) / len(v) for k, v in sorted(tally.items())}

    first = [right[i] for i, r in enumerate(data.rows) if r.index < CIRCULAR]
    passes = [len(idx) for idx in groups.values()]
    return {
        "benchmark": "mmbench",
        "overall": 100 * sum(group_ok.values()) / len(group_ok),
        "circ0": 100 * sum(first) / len(first) if first else 0.0,
        "l2": acc_by(lambda r: r.l2),
        "category": acc_by(lambda r: r.category),
        "questions": len(groups),
        "rows": len(data.rows),
        "passes": {"min": min(passes), "max": max(passes)},
        "failed_extraction": failed,
        "answers": cov.as_dict(),
        "notes": ["overall, l2 and category are CircularEval (every pass right); circ0 is the first pass only"],
    }
