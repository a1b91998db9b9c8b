"""MME: 14 yes/no subtasks, two questions per image, scored as the official eval tool does.

Per subtask, score = 100 * acc + 100 * acc+, where acc is the share of questions answered right and
acc+ the share of images whose two questions are both right (grouped by image name, not line position).
Perception and cognition are the sums over their subtasks. A prediction is parsed like the official
tool: lower-cased; exactly "yes" or "no" as is; otherwise its first 4 characters decide: containing
"yes" -> yes, else containing "no" -> no, else "other" (always wrong).

Ground truth comes in any of three layouts (detected from what is on disk, see `load_mme`):
- release: `ROOT/<subtask>/` holding images with same-stem `.txt` files, or `images/` plus
  `questions_answers_YN/`; each txt line is `question<TAB>Yes|No`;
- template: the eval tool's `ROOT/<subtask>.txt`, lines `image<TAB>question<TAB>GT`
  (a results directory is the same with `<TAB>prediction` appended: `load_mme_results`);
- LLaVA's question file (JSON lines `question_id, image, text, category`; it carries no answers, so
  it serves `kanva eval run`, or scoring when rows also hold an `answer`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, Coverage, assign, read_json_or_jsonl
from kanva.eval.prompts import normalize_question

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
# Kanva's synthetic set adds one subtask whose questions need a knowledge-base fact: it is cognition.
KANVA_COGNITION = ("knowledge",)
SUBTASKS = PERCEPTION + COGNITION + KANVA_COGNITION
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class MMEQuestion:
    subtask: str
    image: str  # image file name: with the subtask, the key an image's questions are grouped by
    question: str  # as written in the data, suffix included
    gt: str | None  # "yes" | "no"; None when the layout carries no answers
    where: str  # file:line
    image_rel: str  # image path relative to the data root (for running)
    uid: str = ""  # unique question id for answer files: "<subtask>/<image>/<k>"

    @property
    def core(self) -> str:
        return normalize_question(self.question)


@dataclass
class MMEData:
    questions: list[MMEQuestion]
    root: Path
    layout: str  # release | template | llava-questions | results
    sources: list[str] = field(default_factory=list)

    def subtasks(self) -> list[str]:
        present = {q.subtask for q in self.questions}
        return [s for s in SUBTASKS if s in present]


def _yes_no(value: str, where: str) -> str:
    v = value.strip().lower()
    if v not in ("yes", "no"):
        raise KanvaError(f"{where}: ground truth must be Yes or No, got {value!r}")
    return v


def _finish(questions: list[MMEQuestion]) -> list[MMEQuestion]:
    """Checks the pairing rule and numbers each image's questions into a unique id."""
    by_image: dict[tuple[str, str], list[int]] = defaultdict(list)
    seen: dict[tuple[str, str, str], str] = {}
    for i, q in enumerate(questions):
        key = (q.subtask, q.image, q.core)
        if key in seen:
            raise KanvaError(f"{q.where}: duplicate question for image {q.image!r} (first at {seen[key]})")
        seen[key] = q.where
        by_image[(q.subtask, q.image)].append(i)
    out = list(questions)
    for (subtask, image), idx in by_image.items():
        if len(idx) != 2:
            where = ", ".join(questions[i].where for i in idx)
            raise KanvaError(
                f"{subtask}: image {image!r} has {len(idx)} question(s) ({where}); MME pairs exactly two per image"
            )
        for k, i in enumerate(idx):
            q = questions[i]
            out[i] = MMEQuestion(q.subtask, q.image, q.question, q.gt, q.where, q.image_rel, f"{subtask}/{image}/{k}")
    return out


def _known_subtask(name: str, where: str) -> str:
    if name not in SUBTASKS:
        raise KanvaError(f"{where}: unknown MME subtask {name!r} (known: {', '.join(SUBTASKS)})")
    return name


def _split_line(line: str, where: str, n_fields: int) -> list[str]:
    """Splits a tab-separated line into n_fields; the last field keeps any extra tabs (a prediction may)."""
    parts = line.split("\t", n_fields - 1)
    if len(parts) != n_fields:
        hint = " (a prediction containing a newline breaks its line in two)" if n_fields == 4 else ""
        raise KanvaError(f"{where}: expected {n_fields} tab-separated fields, found {len(parts)}{hint}")
    return parts


def _template_lines(path: Path):
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if line.strip():
                yield n, line


def _load_template(root: Path) -> MMEData:
    files = [root / f"{s}.txt" for s in SUBTASKS if (root / f"{s}.txt").is_file()]
    qs = []
    for path in files:
        subtask = path.stem
        for n, line in _template_lines(path):
            where = f"{path}:{n}"
            image, question, gt = _split_line(line, where, 3)
            qs.append(MMEQuestion(subtask, image, question, _yes_no(gt, where), where, f"{subtask}/{image}"))
    return MMEData(_finish(qs), root, "template", [str(p) for p in files])


def _load_release(root: Path) -> MMEData:
    qs = []
    sources = []
    for subtask in SUBTASKS:
        d = root / subtask
        if not d.is_dir():
            continue
        sources.append(str(d))
        qa_dir, img_dir = (d / "questions_answers_YN", d / "images") if (d / "questions_answers_YN").is_dir() else (d, d)
        for txt in sorted(qa_dir.glob("*.txt")):
            image = next((img_dir / (txt.stem + e) for e in IMAGE_EXTS if (img_dir / (txt.stem + e)).is_file()), None)
            if image is None:
                raise KanvaError(f"{txt}: no image {txt.stem}.* beside it in {img_dir}")
            for n, line in _template_lines(txt):
                where = f"{txt}:{n}"
                question, gt = _split_line(line, where, 2)
                rel = image.relative_to(root).as_posix()
                qs.append(MMEQuestion(subtask, image.name, question, _yes_no(gt, where), where, rel))
    return MMEData(_finish(qs), root, "release", sources)


def _load_llava_questions(path: Path) -> MMEData:
    qs = []
    for n, row in read_json_or_jsonl(path):
        where = f"{path}:{n}"
        for key in ("image", "text", "category"):
            if not isinstance(row.get(key), str):
                raise KanvaError(f"{where}: MME question needs a string {key!r}")
        subtask = _known_subtask(row["category"], where)
        gt = _yes_no(row["answer"], where) if row.get("answer") is not None else None
        image = PurePosixPath(row["image"]).name
        qs.append(MMEQuestion(subtask, image, row["text"], gt, where, row["image"]))
    return MMEData(_finish(qs), path.parent, "llava-questions", [str(path)])


def load_mme(path: Path) -> MMEData:
    """Ground truth (and images, for running) from any of the three layouts; see the module docstring."""
    path = Path(path)
    if path.is_file():
        return _load_llava_questions(path)
    if not path.is_dir():
        raise KanvaError(f"{path}: no such file or directory")
    if any((path / f"{s}.txt").is_file() for s in SUBTASKS):
        return _load_template(path)
    if any((path / s).is_dir() for s in SUBTASKS):
        return _load_release(path)
    raise KanvaError(
        f"{path}: no MME data found: expected <subtask>.txt files (eval tool template), <subtask>/ folders "
        f"(release) or a LLaVA question file; subtasks: {', '.join(SUBTASKS)}"
    )


def load_mme_results(path: Path) -> tuple[MMEData, list[Answer]]:
    """The eval tool's results directory: `<subtask>.txt` lines `image<TAB>question<TAB>GT<TAB>prediction`."""
    path = Path(path)
    files = [path / f"{s}.txt" for s in SUBTASKS if (path / f"{s}.txt").is_file()]
    if not files:
        raise KanvaError(f"{path}: no <subtask>.txt result files (subtasks: {', '.join(SUBTASKS)})")
    qs, preds = [], []
    for f in files:
        for n, line in _template_lines(f):
            where = f"{f}:{n}"
            image, question, gt, pred = _split_line(line, where, 4)
            qs.append(MMEQuestion(f.stem, image, question, _yes_no(gt, where), where, f"{f.stem}/{image}"))
            preds.append(Answer(question_id="", text=pred, prompt=question, category=f.stem, image=image, where=where))
    qs = _finish(qs)
    preds = [Answer(q.uid, a.text, a.prompt, a.category, a.image, a.where) for q, a in zip(qs, preds)]
    return MMEData(qs, path, "results", [str(f) for f in files]), preds


def parse_yes_no(prediction: str) -> str:
    """The official MME parsing: "yes", "no" or "other"."""
    p = prediction.lower()
    if p in ("yes", "no"):
        return p
    head = p[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def _locator(data: MMEData):
    """Finds an answer's question: by subtask + image + question text, else by our unique id.

    The subtask comes from the answer's `category`, else from its image path / question id, whose first
    component is the subtask in LLaVA's MME files ("artwork/images/x.jpg"). The question text is the
    prompt with any known suffix stripped; failing an exact match, the longest question of that image
    that the prompt starts with (a prompt may carry a suffix we do not know).
    """
    by_image: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_uid = {}
    for i, q in enumerate(data.questions):
        by_image[(q.subtask, q.image)].append(i)
        by_uid[q.uid] = i
    subtasks = {q.subtask for q in data.questions}

    def locate(a: Answer) -> int | None:
        if a.prompt is not None:
            ref = PurePosixPath(a.image or a.question_id)
            subtask = a.category if a.category in subtasks else (ref.parts[0] if ref.parts else "")
            cands = by_image.get((subtask, ref.name), [])
            core = normalize_question(a.prompt)
            exact = [i for i in cands if data.questions[i].core == core]
            if exact:
                return exact[0]
            prefix = [i for i in cands if core.startswith(data.questions[i].core)]
            if prefix:
                return max(prefix, key=lambda i: len(data.questions[i].core))
        return by_uid.get(a.question_id)

    return locate


def match_mme(data: MMEData, answers: list[Answer]) -> tuple[list[Answer | None], Coverage]:
    """Each question's answer (None: missing), found as `score_mme` finds it."""
    return assign(len(data.questions), answers, _locator(data), lambda i: data.questions[i].uid)


def points(per_image: Sequence[Sequence[bool]]) -> float:
    """MME's score of a subtask from the outcomes of each image's questions: 100 x accuracy + 100 x accuracy+
    (the share of images with every question right); 0 to 200."""
    acc, acc_plus = accuracies(per_image)
    return 100 * acc + 100 * acc_plus


def accuracies(per_image: Sequence[Sequence[bool]]) -> tuple[float, float]:
    """(accuracy over the questions, accuracy+ over the images) of a subtask."""
    return sum(sum(v) for v in per_image) / sum(len(v) for v in per_image), sum(all(v) for v in per_image) / len(per_image)


def score_mme(data: MMEData, answers: list[Answer]) -> dict:
    """Scores answers against MME ground truth; returns the results dict (points, 2 questions/image)."""
    if any(q.gt is None for q in data.questions):
        first = next(q for q in data.questions if q.gt is None)
        raise KanvaError(
            f"{first.where}: this MME data has no ground truth (LLaVA's question file carries none); "
            "score against the eval tool's template or the release layout"
        )
    return score_mme_matched(data, *match_mme(data, answers))


def mme_outcomes(data: MMEData, by_q: list[Answer | None]) -> dict[str, dict[str, list[bool]]]:
    """subtask -> image -> whether each of its questions was answered right (a missing answer is wrong)."""
    out: dict[str, dict[str, list[bool]]] = defaultdict(dict)
    for q, a in zip(data.questions, by_q):
        ok = a is not None and parse_yes_no(a.text) == q.gt
        out[q.subtask].setdefault(q.image, []).append(ok)
    return out


def score_mme_matched(data: MMEData, by_q: list[Answer | None], cov: Coverage) -> dict:
    other: dict[str, int] = defaultdict(int)
    for q, a in zip(data.questions, by_q):
        other[q.subtask] += a is None or parse_yes_no(a.text) == "other"
    outcomes = mme_outcomes(data, by_q)
    subtasks, details = {}, {}
    for s in data.subtasks():
        per_image = list(outcomes[s].values())
        acc, acc_plus = accuracies(per_image)
        subtasks[s] = points(per_image)
        details[s] = {
            "acc": 100 * acc,
            "acc_plus": 100 * acc_plus,
            "questions": sum(len(v) for v in per_image),
            "images": len(per_image),
            "other": other[s],
        }
    return {
        "benchmark": "mme",
        "perception": sum(v for s, v in subtasks.items() if s in PERCEPTION),
        "cognition": sum(v for s, v in subtasks.items() if s not in PERCEPTION),
        "subtasks": subtasks,
        "details": details,
        "answers": cov.as_dict(),
    }
