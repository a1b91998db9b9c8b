"""POPE: yes/no object-existence probes in three splits (random, popular, adversarial).

Ground truth is POPE's annotation files (JSON lines `question_id, image, text, label`), one per split,
the split named by the file: `<anything>_<split>.json` (POPE ships `coco_pope_<split>.json`). LLaVA's
question file (JSON lines with `category` = split and its own ids) can be given beside them: it is what
`kanva eval run` asks, and it tells the split, image and text of answers that carry only an id.

Answers are joined to labels by split + image + question text, or by id where the ids are the
annotation file's own; never by position. Parsing is POPE's: keep the text before the first ".",
drop commas, split on spaces; "No", "no" or "not" as a word means no, anything else yes. Per split:
accuracy, precision, recall, F1 (positive = yes) and the yes-ratio of the predictions; then the mean F1.
A missing answer is scored as the wrong answer (the opposite of its label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, Coverage, assign, read_json_or_jsonl, row_qid
from kanva.eval.prompts import normalize_question

SPLIT_ORDER = ("random", "popular", "adversarial")


@dataclass(frozen=True)
class PopeQuestion:
    split: str
    image: str
    question: str
    label: str | None  # "yes" | "no"; None for questions only in a LLaVA question file
    qid: str  # the id in its source file
    uid: str  # unique across splits: the LLaVA id when known, else "<split>/<qid>"
    where: str

    @property
    def core(self) -> str:
        return normalize_question(self.question)


@dataclass
class PopeData:
    questions: list[PopeQuestion]  # the labelled questions (annotation files), in file order
    question_file: list[PopeQuestion]  # rows of a LLaVA question file, if one was given (labels joined)
    sources: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in a data folder that are not POPE data

    @property
    def asked(self) -> list[PopeQuestion]:
        """What `kanva eval run` asks: the LLaVA question file's rows if given, else the annotations."""
        return self.question_file or self.questions

    def splits(self) -> list[str]:
        present = list(dict.fromkeys(q.split for q in self.questions))
        return [s for s in SPLIT_ORDER if s in present] + sorted(s for s in present if s not in SPLIT_ORDER)


def _need_str(row: dict, key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v:
        raise KanvaError(f"{where}: POPE row needs a non-empty string {key!r}")
    return v


def _classify(path: Path) -> tuple[str, list]:
    """'labels', 'questions' or 'other' from the rows' fields (not the name)."""
    try:
        rows = read_json_or_jsonl(path)
    except KanvaError:
        return "other", []
    if rows and all("label" in r for _, r in rows):
        return "labels", rows
    if rows and all("category" in r and "text" in r and "image" in r for _, r in rows):
        return "questions", rows
    return "other", rows


def load_pope(paths: list[Path]) -> PopeData:
    """Annotation files and optionally a LLaVA question file, given as files or folders holding them."""
    files: list[Path] = []
    explicit: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(x for x in p.iterdir() if x.suffix in (".json", ".jsonl") and x.is_file())
        elif p.is_file():
            files.append(p)
            explicit.add(p)
        else:
            raise KanvaError(f"{p}: no such file or directory")
    labelled: list[PopeQuestion] = []
    qfile_rows: list[tuple[Path, int, dict]] = []
    sources, ignored = [], []
    seen_splits: dict[str, Path] = {}
    for f in files:
        kind, rows = _classify(f)
        if kind == "other":
            if f in explicit:
                raise KanvaError(f"{f}: neither a POPE annotation file (rows with 'label') nor a LLaVA question file")
            ignored.append(str(f))
            continue
        sources.append(str(f))
        if kind == "questions":
            qfile_rows += [(f, n, r) for n, r in rows]
            continue
        split = f.stem.rsplit("_", 1)[-1]
        if split in seen_splits:
            raise KanvaError(f"{f}: split {split!r} already read from {seen_splits[split]}")
        seen_splits[split] = f
        for n, row in rows:
            where = f"{f}:{n}"
            label = _need_str(row, "label", where).strip().lower()
            if label not in ("yes", "no"):
                raise KanvaError(f"{where}: label must be yes or no, got {row['label']!r}")
            qid = row_qid(row, where)
            labelled.append(
                PopeQuestion(split, _need_str(row, "image", where), _need_str(row, "text", where), label, qid,
                             f"{split}/{qid}", where)
            )
    if not labelled:
        raise KanvaError(f"{', '.join(map(str, paths))}: no POPE annotation files (JSON lines with 'label') found")
    _check_unique(labelled)
    asked = []
    if qfile_rows:
        uids = set()
        for f, n, row in qfile_rows:
            where = f"{f}:{n}"
            qid = row_qid(row, where)
            if qid in uids:
                raise KanvaError(f"{where}: duplicate question_id {qid!r} in the question file")
            uids.add(qid)
            split = _need_str(row, "category", where)
            image, text = _need_str(row, "image", where), _need_str(row, "text", where)
            asked.append(PopeQuestion(split, image, text, None, qid, qid, where))
        # The run asks these; their labels come from the annotation files by split + image + text.
        find = _text_index(labelled)
        labels = [find(q.split, q.image, q.question) for q in asked]
        asked = [
            PopeQuestion(q.split, q.image, q.question, labelled[i].label if i is not None else None, q.qid, q.uid,
                         q.where)
            for q, i in zip(asked, labels)
        ]
    return PopeData(labelled, asked, sources, ignored)


def _text_index(qs: list[PopeQuestion]):
    """find(split, image, text) -> index of the question: the same text once suffixes are stripped, else
    the longest question of that image the text starts with (a prompt may carry a suffix we do not know)."""
    by_image: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(qs):
        by_image.setdefault((q.split, q.image), []).append(i)

    def find(split: str, image: str, text: str) -> int | None:
        core = normalize_question(text)
        cands = by_image.get((split, image), [])
        for i in cands:
            if qs[i].core == core:
                return i
        prefix = [i for i in cands if core.startswith(qs[i].core)]
        return max(prefix, key=lambda i: len(qs[i].core)) if prefix else None

    return find


def _check_unique(qs: list[PopeQuestion]) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for q in qs:
        key = (q.split, q.image, q.core)
        if key in seen:
            raise KanvaError(
                f"{q.where}: the same question on image {q.image!r} appears twice in split {q.split!r} "
                f"(first at {seen[key]})"
            )
        seen[key] = q.where


def parse_pope(prediction: str) -> str:
    """POPE's parsing: "no" when "No", "no" or "not" is a word of the first sentence, else "yes"."""
    first = prediction.split(".", 1)[0].replace(",", "")
    words = first.split(" ")
    return "no" if ("No" in words or "no" in words or "not" in words) else "yes"


def _locator(data: PopeData):
    find = _text_index(data.questions)
    by_split_id = {(q.split, q.qid): i for i, q in enumerate(data.questions)}
    by_uid = {q.uid: i for i, q in enumerate(data.questions)}
    asked = {q.uid: q for q in data.question_file}
    splits = set(data.splits())

    def locate(a: Answer) -> int | None:
        q = asked.get(a.question_id)  # the LLaVA question file row with this id, if any
        split = a.category if a.category in splits else (q.split if q is not None else None)
        if split is None and len(splits) == 1:
            split = next(iter(splits))
        image = a.image or (q.image if q is not None else None)
        text = a.prompt if a.prompt is not None else (q.question if q is not None else None)
        if split is not None and image is not None and text is not None:
            i = find(split, image, text)
            if i is not None:
                return i
        if a.question_id in by_uid:
            return by_uid[a.question_id]
        if split is not None and q is None:
            return by_split_id.get((split, a.question_id))
        return None

    return locate


def pope_metrics(tp: int, fp: int, tn: int, fn: int) -> dict:
    """POPE's figures of a confusion matrix ("yes" is positive): accuracy, precision, recall, F1, yes-ratio."""
    n = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / n if n else 0.0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": n,
    }


SPLIT_HINT = ("Answers without 'category' cannot be placed in a split by text alone: give LLaVA's question "
              "file (category = split) in --data beside the annotation files.")


def _ambiguous(data: PopeData) -> bool:
    """Several splits and no question file: an answer without `category` may fit a question of each."""
    return not data.question_file and len(data.splits()) > 1


def match_pope(data: PopeData, answers: list[Answer]) -> tuple[list[Answer | None], Coverage]:
    """Each question's answer (None: missing), found as `score_pope` finds it."""
    return assign(len(data.questions), answers, _locator(data), lambda i: data.questions[i].uid,
                  hint=SPLIT_HINT if _ambiguous(data) else "")


def pope_prediction(q: PopeQuestion, a: Answer | None) -> str:
    """"yes" or "no": the answer's, or the wrong one for a missing answer."""
    return parse_pope(a.text) if a is not None else ("no" if q.label == "yes" else "yes")


def score_pope(data: PopeData, answers: list[Answer]) -> dict:
    """Per-split confusion matrices and metrics (fractions), and the mean F1 over the splits."""
    by_q, cov = match_pope(data, answers)
    counts = {s: {"tp": 0, "fp": 0, "tn": 0, "fn": 0} for s in data.splits()}
    for q, a in zip(data.questions, by_q):
        pred = pope_prediction(q, a)
        key = ("t" if pred == q.label else "f") + ("p" if pred == "yes" else "n")
        counts[q.split][key] += 1
    splits = {s: pope_metrics(**c) for s, c in counts.items()}
    notes = [f"not POPE data, not read: {f}" for f in data.ignored]
    if cov.unmatched and _ambiguous(data):
        notes.append(SPLIT_HINT)
    return {
        "benchmark": "pope",
        "splits": splits,
        "mean_f1": sum(m["f1"] for m in splits.values()) / len(splits),
        "answers": cov.as_dict(),
        "notes": notes,
    }
