"""MMBench test: the submission spreadsheet the official server takes (answers cannot be scored here).

Layout, as LLaVA's submission script writes it for the evaluation server: every row of the TSV (so
every circular pass, each with its own index), with the columns of the TSV except hint, category,
source, image, comment and l2-category, and a `prediction` column (the answer text as generated)
inserted as the seventh column (after index, question, A, B, C, D in the released files). A cell that
is empty or NaN in the TSV stays empty; a row without an answer has an empty prediction and is
counted. Written with openpyxl (.xlsx), one sheet, header on the first row.
"""

from __future__ import annotations

from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer
from kanva.eval.mmbench import CIRCULAR, _missing, _read_tsv

DROPPED = ("hint", "category", "source", "image", "comment", "l2-category")
PREDICTION_AT = 6  # 0-based position of the inserted column


def _cell(value: str, column: str):
    if _missing(value):
        return None
    if column == "index":
        try:
            return int(float(value))
        except ValueError:
            raise KanvaError(f"index {value!r} is not an integer") from None
    return value


def write_submission(tsv: Path, answers: list[Answer], out: Path) -> dict:
    """Writes OUT (.xlsx) from the TSV and the answers; returns rows, passes, missing and unmatched counts."""
    from openpyxl import Workbook

    tsv, out = Path(tsv), Path(out)
    if not tsv.is_file():
        raise KanvaError(f"{tsv}: no such file")
    if out.suffix.lower() != ".xlsx":
        raise KanvaError(f"{out}: the MMBench submission is an .xlsx spreadsheet")
    header, raw = _read_tsv(tsv)
    keep = [i for i, h in enumerate(header) if h.strip().lower() not in DROPPED]
    if "index" not in [header[i].strip().lower() for i in keep]:
        raise KanvaError(f"{tsv}: no 'index' column")
    columns = [header[i].strip() for i in keep]
    columns.insert(min(PREDICTION_AT, len(columns)), "prediction")
    by_index: dict[int, str] = {}
    duplicates = []
    for a in answers:
        try:
            idx = int(float(a.question_id))
        except ValueError:
            idx = None
        if idx is None:
            continue
        if idx in by_index:
            duplicates.append(a.question_id)
            continue
        by_index[idx] = a.text
    wb = Workbook()
    ws = wb.active
    ws.append(columns)
    seen, missing = set(), 0
    index_col = [header[i].strip().lower() for i in keep].index("index")
    for line, r in raw:
        if len(r) != len(header):
            raise KanvaError(f"{tsv}:{line}: {len(r)} fields, header has {len(header)}")
        try:
            values = [_cell(r[i], header[i].strip().lower()) for i in keep]
        except KanvaError as e:
            raise KanvaError(f"{tsv}:{line}: {e}") from None
        idx = values[index_col]
        seen.add(idx)
        pred = by_index.get(idx)
        missing += pred is None
        values.insert(min(PREDICTION_AT, len(values)), pred)
        ws.append(values)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    groups = {i % CIRCULAR for i in seen if i is not None}
    return {
        "file": str(out),
        "rows": len(raw),
        "questions": len(groups),
        "missing": missing,
        "duplicates": len(duplicates),
        "unmatched": len([i for i in by_index if i not in seen]),
        "columns": columns,
    }
