"""`kanva data convert scienceqa`: the official ScienceQA release -> LLaVA-format files, LLaVA's prompt formats.

Input: the release folder with `problems.json` ({pid: {question, choices, answer, hint, image, lecture,
solution, ...}}) and `pid_splits.json` ({split: [pid, ...]}); images stay where they are
(`images/<split>/<pid>/<image>`), and each sample's `image` is `<pid>/<image>` as in LLaVA's files.

A format is named INPUT-OUTPUT as LLaVA (and ScienceQA's own baselines) name them: the input letters
say what the human turn holds in order (Q question, C context, M options, L lecture, E explanation =
the solution), the output letters what the answer turn holds (A answer, L lecture, E explanation,
P a LECTURE/SOLUTION/ANSWER layout). E.g. `CQM-A` (context, question, options -> the answer) and
`QCM-LEA` (question, context, options -> lecture, explanation, then the answer).

Text rules (LLaVA's conversion, kept exactly so trained models and their scores compare):
- context = the hint, or "N/A" when empty; options = "(A) x (B) y ..." on one line;
- input lines "Question: ...", "Context: ...", "Options: ...", "BECAUSE: ..." in the format's order,
  each ending in a newline; output "Answer: ..." with "The answer is X." and "BECAUSE: ..." parts;
- then each of input and output has its first run of double spaces made single (one pass) and is
  stripped; a trailing "BECAUSE:" (empty lecture/solution) is removed, with any other "BECAUSE:";
- finally a leading "Question: " / "Answer: " goes (with any repeat of it in the text), and a sample
  with an image gets "\\n<image>" after the human text.
Output files: `llava_<split>_<format>.json` (a JSON list, indent 2), one per split and format.
"""

from __future__ import annotations

import json
from pathlib import Path

from kanva.errors import KanvaError
from kanva.jsonfile import read_json

LETTERS = "ABCDE"

# Input formats: the blocks of the human turn, in order. "BECAUSE" holds the lecture and/or solution.
INPUTS = {
    "CQM": ("context", "question", "options"),
    "QCM": ("question", "context", "options"),
    "QCML": ("question", "context", "options", "because:L"),
    "QCME": ("question", "context", "options", "because:E"),
    "QCMLE": ("question", "context", "options", "because:LE"),
    "QCLM": ("question", "context", "because:L", "options"),
    "QCEM": ("question", "context", "because:E", "options"),
    "QCLEM": ("question", "context", "because:LE", "options"),
}
# Output formats: a template over {answer}, {lecture}, {solution} (LEPA is built separately).
OUTPUTS = {
    "A": "Answer: The answer is {answer}.",
    "AL": "Answer: The answer is {answer}. BECAUSE: {solution}",
    "AE": "Answer: The answer is {answer}. BECAUSE: {lecture}",
    "ALE": "Answer: The answer is {answer}. BECAUSE: {lecture} {solution}",
    "AEL": "Answer: The answer is {answer}. BECAUSE: {solution} {lecture}",
    "LA": "Answer: {lecture} The answer is {answer}.",
    "EA": "Answer: {solution} The answer is {answer}.",
    "LEA": "Answer: {lecture} {solution} The answer is {answer}.",
    "ELA": "Answer: {solution} {lecture} The answer is {answer}.",
}
DEFAULT_FORMATS = ("CQM-A", "QCM-LEA")
_BLOCK_LABEL = {"question": "Question", "context": "Context", "options": "Options"}


def check_format(fmt: str) -> tuple[str, str]:
    inp, _, out = fmt.partition("-")
    if inp not in INPUTS or (out not in OUTPUTS and out != "LEPA"):
        raise KanvaError(f"unknown ScienceQA prompt format {fmt!r}: INPUT-OUTPUT with INPUT one of "
                         f"{', '.join(INPUTS)} and OUTPUT one of {', '.join([*OUTPUTS, 'LEPA'])}")
    return inp, out


def _tidy(text: str) -> str:
    text = text.replace("  ", " ").strip()
    if text.endswith("BECAUSE:"):
        text = text.replace("BECAUSE:", "").strip()
    return text


def example(problem: dict, fmt: str) -> tuple[str, str]:
    """(human text, answer text) of one problem in format `fmt`, before the image token."""
    inp, out = check_format(fmt)
    fields = {
        "question": problem["question"],
        "context": (problem.get("hint") or "").strip() or "N/A",
        "options": " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(problem["choices"])),
    }
    lecture = problem.get("lecture") or ""
    solution = problem.get("solution") or ""
    because = {"L": lecture, "E": solution, "LE": f"{lecture} {solution}"}
    lines = []
    for block in INPUTS[inp]:
        if block.startswith("because:"):
            lines.append(f"BECAUSE: {because[block.split(':')[1]]}\n")
        else:
            lines.append(f"{_BLOCK_LABEL[block]}: {fields[block]}\n")
    answer = LETTERS[problem["answer"]]
    if out == "LEPA":
        text = (f"LECTURE: {lecture}\n" if lecture.strip() else "") + (f"SOLUTION: {solution}\n" if solution.strip() else "")
        output = text + f"###\nANSWER: {answer}."
    else:
        output = OUTPUTS[out].format(answer=answer, lecture=lecture, solution=solution)
    human, gpt = _tidy("".join(lines)), _tidy(output)
    if human.startswith("Question: "):
        human = human.replace("Question: ", "")
    if gpt.startswith("Answer: "):
        gpt = gpt.replace("Answer: ", "")
    return human, gpt


def _load(root: Path) -> tuple[dict, dict]:

    what = "file (--data is the ScienceQA release folder)"
    return read_json(root / "problems.json", what), read_json(root / "pid_splits.json", what)


def _check_problem(pid: str, p, where: str) -> None:
    if not isinstance(p, dict):
        raise KanvaError(f"{where}: pid {pid} is listed in pid_splits.json but not in problems.json")
    choices = p.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS) or not all(isinstance(c, str) for c in choices):
        raise KanvaError(f"{where} (pid {pid}): 'choices' must be 2-{len(LETTERS)} strings")
    if not isinstance(p.get("answer"), int) or not 0 <= p["answer"] < len(choices):
        raise KanvaError(f"{where} (pid {pid}): 'answer' must index one of the choices, got {p.get('answer')!r}")
    if not isinstance(p.get("question"), str):
        raise KanvaError(f"{where} (pid {pid}): 'question' must be a string")


def convert(root: Path, out: Path | None = None, splits=("train", "val", "test"), formats=DEFAULT_FORMATS) -> list[dict]:
    """Writes llava_<split>_<format>.json for every split and format; returns [{file, samples, images}]."""
    root = Path(root)
    out = Path(out) if out else root
    problems, pid_splits = _load(root)
    for fmt in formats:
        check_format(fmt)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        if split not in pid_splits:
            raise KanvaError(f"{root / 'pid_splits.json'}: no split {split!r} (has {', '.join(pid_splits)})")
        for fmt in formats:
            rows = []
            for pid in pid_splits[split]:
                pid = str(pid)
                p = problems.get(pid)
                _check_problem(pid, p, str(root / "problems.json"))
                human, gpt = example(p, fmt)
                row = {"id": pid}
                if p.get("image"):
                    row["image"] = f"{pid}/{p['image']}"
                    human = f"{human}\n<image>"
                row["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
                rows.append(row)
            path = out / f"llava_{split}_{fmt}.json"
            path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append({"file": str(path), "samples": len(rows), "images": sum("image" in r for r in rows)})
    return written
