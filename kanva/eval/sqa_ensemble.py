"""`kanva eval ensemble sqa`: two ScienceQA answer files combined, a judge settling where they disagree.

LLaVA's best ScienceQA figure (92.53%) combined LLaVA's answers with GPT-4's own (text-only) answers:
where the two gave the same option it stood; where they differed, GPT-4 was asked again with both
answers in view and its choice was taken. Kanva does the same with any two answer files and any
OpenAI-compatible judge:

- the option of each answer is read with the ScienceQA rules (`sqa.extract_letter`: exactly a letter,
  "X. ..." or one "The answer is X."); a missing answer reads as no option;
- same option in both: that answer is kept (`source: agree`);
- otherwise the judge gets the context, question, options and both answers (Kanva's own wording, so
  the result is marked `comparable: false` with the prompt's hash) and must reply with one option as
  "The answer is X."; its reply becomes the answer (`source: judge`);
- a judge call that fails, or a reply naming no single option, is counted (`judge_failures`) and
  that question has no answer (scored wrong), never a default pick of either file.

The combined answers are written as a LLaVA answer file and scored with the ScienceQA rules; judge
replies are cached by request, so a rerun reproduces the score.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kanva.errors import KanvaError
from kanva.eval.answers import Answer, assign
from kanva.eval.judge import JudgeError, judge_record, prompt_hash
from kanva.eval.sqa import SQAData, SQAQuestion, extract_letter, score_sqa

SYSTEM = ("You settle disagreements between two answers to a multiple-choice science question. Read the "
          "context and the question, weigh both answers and their reasoning, and decide which option is correct.")
INSTRUCTION = ("Which option is correct? Think it over briefly if you need to, then end with one line exactly "
               "of the form \"The answer is X.\" where X is the letter of the option.")
_FINAL = re.compile(r"The answer is \(?([A-Z])\)?\.")


def request(q: SQAQuestion, first: str, second: str) -> list[dict]:
    options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(q.choices))
    user = (f"Context: {q.hint.strip() or 'N/A'}\nQuestion: {q.question}\nOptions:\n{options}\n\n"
            f"[Answer 1]\n{first or '(no answer)'}\n[End of Answer 1]\n\n"
            f"[Answer 2]\n{second or '(no answer)'}\n[End of Answer 2]\n\n{INSTRUCTION}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def final_letter(reply: str, q: SQAQuestion) -> str | None:
    """The one option the judge names last as "The answer is X."; None if it names none in range."""
    found = _FINAL.findall(reply)
    if not found or found[-1] not in q.letters:
        return None
    return found[-1]


def ensemble(data: SQAData, first: list[Answer], second: list[Answer], judge, out: Path) -> dict:
    """Writes the combined answers to `out` (JSON lines) and returns the ScienceQA score with counts."""
    by_pid = {q.pid: i for i, q in enumerate(data.questions)}
    locate = lambda a: by_pid.get(a.question_id)  # noqa: E731
    a_by_q, cov_a = assign(len(data.questions), first, locate, lambda i: data.questions[i].pid)
    b_by_q, cov_b = assign(len(data.questions), second, locate, lambda i: data.questions[i].pid)
    rows, failures, versions = [], [], set()
    agreed = asked = 0
    for q, a, b in zip(data.questions, a_by_q, b_by_q):
        la = extract_letter(a.text, len(q.choices)) if a is not None else None
        lb = extract_letter(b.text, len(q.choices)) if b is not None else None
        if la is not None and la == lb:
            agreed += 1
            rows.append({"question_id": q.pid, "text": a.text, "source": "agree"})
            continue
        asked += 1
        try:
            reply = judge.ask(request(q, a.text if a else "", b.text if b else ""), seed=0)
        except JudgeError as e:
            failures.append(f"{q.pid}: {e}")
            continue
        versions.add(reply.version)
        letter = final_letter(reply.content, q)
        if letter is None:
            failures.append(f"{q.pid}: no single option in the reply (starts {reply.content[:60]!r})")
            continue
        rows.append({"question_id": q.pid, "text": f"The answer is {letter}.", "source": "judge",
                     "judge_reply": reply.content})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = score_sqa(data, [Answer(r["question_id"], r["text"]) for r in rows])
    result.update(
        ensemble={"answers": str(out), "agreed": agreed, "asked_judge": asked,
                  "coverage_first": cov_a.as_dict(), "coverage_second": cov_b.as_dict()},
        judge=judge_record(judge, versions, prompt_hash(SYSTEM, INSTRUCTION), False,
                           "Kanva's own settling prompt: not LLaVA's GPT-4 re-query prompt"),
        judge_failures={"count": len(failures), "examples": failures[:3]},
        notes=[f"{len(failures)} disagreements left unanswered (judge failed), scored wrong"] if failures else [],
    )
    return result


def ensemble_cli(args) -> int:
    from kanva.eval.answers import load_answers
    from kanva.eval.judge import Judge
    from kanva.eval.sqa import load_sqa
    from kanva.eval.table import format_result

    if len(args.predictions) != 2:
        raise KanvaError(f"ensemble sqa: give two answer files (--predictions A B), got {len(args.predictions)}")
    out = args.out or Path(args.predictions[0]).with_name(Path(args.predictions[0]).stem + "_ensemble.jsonl")
    judge = Judge(args.judge_model, args.judge_base_url, args.judge_api_key, temperature=0.0,
                  cache=args.judge_cache or Path(out).with_name(Path(out).stem + ".judge-cache.jsonl"))
    data = load_sqa(args.data, args.split)
    result = ensemble(data, load_answers(args.predictions[0]), load_answers(args.predictions[1]), judge, out)
    print(format_result(result))
    e = result["ensemble"]
    print(f"ensemble: {e['agreed']} agreed, {e['asked_judge']} settled by the judge "
          f"({result['judge_failures']['count']} failed); answers in {e['answers']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
