"""MUIRBench's layout for multi-image multiple choice: the reader (and the field list Kanva's writer uses).

MUIRBench (arXiv 2406.09411; released as `MUIRBENCH/MUIRBENCH` on the Hugging Face hub) has one record per
question: `idx`, `task` (e.g. "Counting", "Difference Spotting"), `image_relation`, `image_type`, `question`,
`options` (a list; letters A, B, ... by position), `answer` (the right letter) and `image_list` (the
images, in the order they are shown). Kanva writes the same records as one JSON list, with `image_list` as
paths relative to the file's folder instead of embedded images, and adds `kind` ("perception" or
"knowledge"), `set_id` and `split` (where the question came from) and `facts` (the annotations and
knowledge-base facts the answer rests on). Only MUIRBench's fields are required to read a file.
"""

from __future__ import annotations

from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import qid_str
from kanva.eval.multichoice import KINDS, McData, McQuestion, check_unique, letters_for
from kanva.jsonfile import read_json

FILE = "muirbench_synthetic.json"  # what `kanva eval make-synthetic --benchmarks muirbench` writes
FIELDS = ("idx", "task", "image_relation", "image_type", "question", "options", "answer", "image_list")


def _str(row: dict, key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise KanvaError(f"{where}: field {key!r} must be a non-empty string, got {v!r}")
    return v


def resolve(path: Path) -> Path:
    """A MUIRBench-layout JSON file, or the folder holding Kanva's."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise KanvaError(f"{path}: no such file (expected a MUIRBench-layout JSON list; "
                         "`kanva eval make-synthetic --benchmarks muirbench` writes OUT/muirbench/" + FILE + ")")
    return path


def load_muirbench(path: Path) -> McData:
    """Reads and checks a MUIRBench-layout file; errors name the file, the record and the field."""
    path = resolve(path)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise KanvaError(f"{path}: expected a JSON list of questions, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        where = f"{path}: [{i}]"
        if not isinstance(row, dict):
            raise KanvaError(f"{where}: not a JSON object")
        try:
            qid = qid_str(row.get("idx"))
        except ValueError:
            raise KanvaError(f"{where}: field 'idx' must be a string or number, got {row.get('idx')!r}") from None
        where = f"{where} (idx {qid})"
        options = row.get("options")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise KanvaError(f"{where}: field 'options' must be a list of strings, got {options!r}")
        letters = letters_for(len(options), f"{where}: field 'options'")
        answer = _str(row, "answer", where).strip()
        if answer not in letters:
            raise KanvaError(f"{where}: field 'answer' must be one of {', '.join(letters)}, got {answer!r}")
        images = row.get("image_list")
        if not isinstance(images, list) or not images or not all(isinstance(x, str) and x for x in images):
            raise KanvaError(f"{where}: field 'image_list' must be a non-empty list of image paths")
        kind = row.get("kind")
        if kind is not None and kind not in KINDS:
            raise KanvaError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        out.append(McQuestion(qid, _str(row, "task", where), _str(row, "question", where), dict(zip(letters, options)),
                              answer, tuple(path.parent / x for x in images), None, kind, where))
    check_unique(out)
    return McData("muirbench", out, str(path))
