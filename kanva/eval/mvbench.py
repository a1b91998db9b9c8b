"""MVBench's layout for video multiple choice: the reader, and its prompt.

MVBench (arXiv 2311.17005; `OpenGVLab/MVBench`) ships one JSON list per task, `json/<task>.json` (e.g.
`moving_direction.json`), each entry `video` (a file name), `question`, `candidates` (the options; letters
A, B, ... by position) and `answer` (the right candidate's text, not its letter). Kanva writes the same
files for its synthetic clips, with the videos in `video/` beside `json/`, and adds `question_id` (unique
over all tasks, `<task>/<position>`: the id an answer carries; derived the same way when a file lacks it),
`kind` ("perception" or "knowledge"), `clip_id`, `split` and `facts` (what the answer rests on). Only
MVBench's fields are required to read a file.
"""

from __future__ import annotations

from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import qid_str
from kanva.eval.multichoice import KINDS, McData, McQuestion, check_unique, letters_for
from kanva.jsonfile import read_json

FIELDS = ("video", "question", "candidates", "answer")
VIDEO_DIR = "video"


def question_id(task: str, position: int) -> str:
    return f"{task}/{position}"


def _task_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    folder = path / "json" if (path / "json").is_dir() else path
    files = sorted(folder.glob("*.json"))
    if not files:
        raise KanvaError(f"{path}: no MVBench task files (expected json/<task>.json; "
                         "`kanva eval make-synthetic --benchmarks mvbench` writes OUT/mvbench/json/)")
    return files


def load_mvbench(path: Path, video_root: Path | None = None) -> McData:
    """Reads MVBench-layout task files (a folder with json/<task>.json, or one task file); videos are looked up
    in `video_root`, else `video/` beside `json/`. Errors name the file, the entry and the field."""
    out = []
    for file in _task_files(path):
        task = file.stem
        root = Path(video_root) if video_root else (file.parent.parent if file.parent.name == "json" else file.parent) / VIDEO_DIR
        entries = read_json(file)
        if not isinstance(entries, list):
            raise KanvaError(f"{file}: expected a JSON list of questions, got {type(entries).__name__}")
        for i, e in enumerate(entries):
            where = f"{file}: [{i}]"
            if not isinstance(e, dict):
                raise KanvaError(f"{where}: not a JSON object")
            for key in ("video", "question", "answer"):
                if not isinstance(e.get(key), str) or not e[key].strip():
                    raise KanvaError(f"{where}: field {key!r} must be a non-empty string, got {e.get(key)!r}")
            cands = e.get("candidates")
            if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
                raise KanvaError(f"{where}: field 'candidates' must be a list of strings, got {cands!r}")
            letters = letters_for(len(cands), f"{where}: field 'candidates'")
            if cands.count(e["answer"]) != 1:
                raise KanvaError(f"{where}: field 'answer' {e['answer']!r} must be exactly one of the candidates {cands}")
            try:
                qid = qid_str(e.get("question_id", question_id(task, i)))
            except ValueError:
                raise KanvaError(f"{where}: field 'question_id' must be a string or number") from None
            kind = e.get("kind")
            if kind is not None and kind not in KINDS:
                raise KanvaError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
            out.append(McQuestion(qid, task, e["question"], dict(zip(letters, cands)), letters[cands.index(e["answer"])],
                                  (), root / e["video"], kind, f"{where} ({qid})"))
    check_unique(out)
    return McData("mvbench", out, str(path))


def mvbench_prompt(q: McQuestion, style: str) -> str:
    """llava: the question, "A. ..." lines and the choice instruction (as MMBench and SEED-Bench); lmms-eval:
    its MVBench layout, "Question:" line, "Option:" and "(A) ..." lines, then its instruction."""
    from kanva.eval.prompts import check_style, choice_prompt

    if check_style(style) == "llava":
        return choice_prompt(q.question, q.options, None, style, context_label=True)
    options = "".join(f"({k}) {v}\n" for k, v in q.options.items())
    return f"Question:{q.question}\nOption:\n{options}{LMMS_MVBENCH_INSTRUCTION}"


LMMS_MVBENCH_INSTRUCTION = "Only give the best option.\n"  # lmms-eval's MVBench post_prompt
