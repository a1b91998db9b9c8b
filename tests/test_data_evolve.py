"""The evolve pipeline: determinism, shards + merge = unsharded, resume after a kill (a real SIGKILL of a
subprocess, and half-written files), exclusion of evaluation images, balance, lineage, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.data.coco import load_coco
from kanva.data.config import EvolveConfig
from kanva.data.evolve import Evolver
from kanva.data.join import join
from kanva.data.llava import load_llava
from kanva.data.ops.base import Draft, Operator
from kanva.data.runner import load_knowledge, merge_runs, run_evolve
from kanva.data.seed import make_seeds, write_seeds
from kanva.data.synth import synth_coco, write_coco
from kanva.data.unit import LETTERS
from kanva.errors import KanvaError


def make_world(root: Path, n: int, seed: int = 3) -> tuple[Path, Path]:
    """A synthetic world (annotations only) and its rule seed file."""
    inst, caps = synth_coco(n, seed=seed)
    write_coco(root / "w", "train", inst, caps, images=False)
    coco = load_coco(root / "w", "train")
    samples, prov = make_seeds(coco, load_knowledge(None, coco.category_names), ["conversation", "reasoning"],
                               seed=0, progress=False)
    write_seeds(samples, prov, root / "seed.json")
    return root / "w", root / "seed.json"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("evo"), 40)


def evolve(world, out, **kw):
    w, seed = world
    kw.setdefault("progress", False)
    return run_evolve(seed, w, "train", out, **kw)


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]


def cfg_with(**changes) -> EvolveConfig:
    cfg = EvolveConfig()
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


def test_rule_only_output_is_byte_identical_and_chunking_does_not_matter(world, tmp_path):
    a = evolve(world, tmp_path / "a", seed=1)
    b = evolve(world, tmp_path / "b", seed=1)
    c = evolve(world, tmp_path / "c", seed=1, cfg=cfg_with(chunk_size=3))
    d = evolve(world, tmp_path / "d", seed=2)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    assert (tmp_path / "a/provenance.jsonl").read_bytes() == (tmp_path / "b/provenance.jsonl").read_bytes()
    assert a.read_bytes() != d.read_bytes()


def test_shards_then_merge_equal_the_unsharded_run(world, tmp_path):
    full = evolve(world, tmp_path / "full", seed=4)
    parts = [tmp_path / f"s{i}" for i in range(3)]
    for i, p in enumerate(parts):
        evolve(world, p, seed=4, shard=(i, 3))
    sizes = [len(load_llava(p / "evolved.json")) for p in parts]
    assert all(sizes) and sum(sizes) > 0
    merged = merge_runs(parts[::-1], tmp_path / "merged")  # order of the arguments does not matter
    assert merged.read_bytes() == full.read_bytes()

    def body(out):
        return Counter(line for line in (out / "provenance.jsonl").read_text().splitlines())

    assert body(tmp_path / "merged") == body(tmp_path / "full")


def test_merge_refuses_incomplete_or_mismatched_shards(world, tmp_path):
    evolve(world, tmp_path / "s0", seed=4, shard=(0, 2))
    with pytest.raises(KanvaError, match=r"shard\(s\) \[1\] of 2 are missing"):
        merge_runs([tmp_path / "s0"], tmp_path / "m")
    evolve(world, tmp_path / "s1", seed=5, shard=(1, 2))
    with pytest.raises(KanvaError, match="not the same run configuration.*seed"):
        merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")


def test_resume_after_half_written_chunk(world, tmp_path):
    ref = evolve(world, tmp_path / "ref", seed=6, cfg=cfg_with(chunk_size=4))
    out = tmp_path / "run"
    evolve(world, out, seed=6, cfg=cfg_with(chunk_size=4), stop_after=3)
    assert not (out / "evolved.json").exists()
    # a kill in the middle of the next chunk leaves partial lines behind
    with (out / "provenance.jsonl").open("a") as f:
        f.write('{"id": "half-written", "status": "ke')
    with (out / "units.jsonl").open("a") as f:
        f.write('{"kind": "unit", "id": "dup')
    with (out / "progress.jsonl").open("a") as f:
        f.write('{"chunk": 3, "pro')
    done = evolve(world, out, seed=6, cfg=cfg_with(chunk_size=4))
    assert done.read_bytes() == ref.read_bytes()
    assert Counter((out / "provenance.jsonl").read_text().splitlines()) == Counter(
        (tmp_path / "ref/provenance.jsonl").read_text().splitlines())


def test_resume_with_another_configuration_is_refused(world, tmp_path):
    evolve(world, tmp_path / "r", seed=6, stop_after=1, cfg=cfg_with(chunk_size=8))
    with pytest.raises(KanvaError, match=r"different configuration \(differs in \['seed'\]\)"):
        evolve(world, tmp_path / "r", seed=7, cfg=cfg_with(chunk_size=8))


@pytest.mark.slow
def test_killed_subprocess_resumes_without_lost_or_duplicated_samples(tmp_path):
    w, seed = make_world(tmp_path, 160, seed=8)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("chunk_size: 2\n")
    cmd = [sys.executable, "-m", "kanva", "data", "evolve", "--input", str(seed), "--coco", str(w), "--split",
           "train", "--config", str(cfg), "--seed", "9", "--quiet"]
    # the uninterrupted reference, in-process (the CLI calls the same function with the same arguments)
    run_evolve(seed, w, "train", tmp_path / "ref", seed=9, cfg=cfg_with(chunk_size=2), progress=False)

    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = out / "progress.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if progress.exists() and progress.read_text().count("\n") >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "evolved.json").exists(), "the run finished before it could be killed"
    again = subprocess.run(cmd + ["--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (out / "evolved.json").read_bytes() == (tmp_path / "ref/evolved.json").read_bytes()
    assert Counter((out / "provenance.jsonl").read_text().splitlines()) == Counter(
        (tmp_path / "ref/provenance.jsonl").read_text().splitlines())


def test_excluded_images_never_appear(world, tmp_path):
    w, seed = world
    names = sorted({s["image"] for s in load_llava(seed)})
    (tmp_path / "list.txt").write_text(f"{names[0]}\n# a comment\n")
    (tmp_path / "pope.jsonl").write_text(json.dumps({"question_id": 1, "image": f"val/{names[1]}",
                                                     "text": "Is there a dog?", "label": "no"}) + "\n")
    (tmp_path / "mme.txt").write_text(f"{names[2]}\tIs there a dog?\tNo\n")
    excl = [tmp_path / "list.txt", tmp_path / "pope.jsonl", tmp_path / "mme.txt"]
    # a COCO instances file excludes its whole split; an MMBench TSV (images embedded) is refused with a hint
    from kanva.data.exclude import read_exclude

    assert read_exclude(w / "annotations/instances_train.json") >= set(names)
    (tmp_path / "mmb.tsv").write_text("index\tquestion\thint\tA\tB\tanswer\timage\n0\tQ?\t\ta\tb\tA\tiVBOR\n")
    with pytest.raises(KanvaError, match="MMBench-style TSV embeds its images"):
        read_exclude(tmp_path / "mmb.tsv")
    out = evolve(world, tmp_path / "x", exclude=excl)
    used = {s["image"] for s in load_llava(out)}
    assert used and not used & set(names[:3])
    excluded = [r for r in records(tmp_path / "x") if r.get("stage") == "input" and r["status"] == "excluded"]
    assert excluded and all(r["id"].split("-")[0] in {n.split(".")[0].lstrip("0") for n in names[:3]}
                            for r in excluded)


def test_balance_and_output_format(world, tmp_path):
    out = evolve(world, tmp_path / "b", seed=1)
    samples = load_llava(out)
    recs = records(tmp_path / "b")
    kept = {r["id"]: r for r in recs if r.get("status") == "kept" and r.get("round")}
    dropped = {r["id"] for r in recs if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    final = [s for s in samples if s["id"] in kept]
    assert final and len(final) == len(kept) - len(dropped)
    answers = Counter(s["conversations"][1]["value"] for s in final)
    assert answers["Yes"] == answers["No"] > 0
    letters = [answers[x] for x in LETTERS]
    assert max(letters) - min(letters) <= 1 and sum(letters) > 0
    for s in final:  # the fixed answer-format suffixes
        q, a = s["conversations"][0]["value"], s["conversations"][1]["value"]
        if a in LETTERS:
            assert q.endswith("Answer with the option's letter from the given choices directly.")
        elif a in ("Yes", "No"):
            assert q.endswith("Answer the question using a single word or phrase.")
    seeds = load_llava(world[1])
    assert samples[: len(seeds)] == seeds  # the input samples come first, unchanged


def test_a_failed_evolution_keeps_its_parent(world, tmp_path):
    evolve(world, tmp_path / "l", seed=1)
    recs = [r for r in records(tmp_path / "l") if r.get("round")]
    by = {(r["lineage"], r["round"]): r for r in recs}
    checked = 0
    for r in recs:
        nxt = by.get((r["lineage"], r["round"] + 1))
        if nxt is None:
            continue
        if r["status"] == "rejected":
            assert nxt["parent"] == r["parent"]
            checked += 1
        elif "." not in r["id"].rsplit("/", 1)[1]:
            assert nxt["parent"] == r["id"]
    assert checked


def test_packing_makes_valid_multi_turn_samples(world, tmp_path):
    out = evolve(world, tmp_path / "p", cfg=cfg_with(pack=4, keep_seeds=False))
    samples = load_llava(out)  # validates the contract
    assert max(len(s["conversations"]) for s in samples) == 8


def test_missing_image_and_malformed_annotations(world, tmp_path):
    w, seed = world
    bad = tmp_path / "bad.json"
    data = json.loads(seed.read_text())
    data.append({"id": "stray-1", "image": "999999.png",
                 "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "Yes."}]})
    bad.write_text(json.dumps(data))
    run_evolve(bad, w, "train", tmp_path / "o", progress=False)  # not annotated: grounded by its answer, here none
    stray = [json.loads(x) for x in (tmp_path / "o/provenance.jsonl").read_text().splitlines() if "stray-1" in x]
    assert [(r["status"], r["grounding"]) for r in stray if r.get("stage") == "input"] == [("seed", "none")]

    inst = json.loads((w / "annotations/instances_train.json").read_text())
    caps = json.loads((w / "annotations/captions_train.json").read_text())
    for field, value, msg in (("bbox", [1, 2, 3], r"annotations\[3\].bbox must be \[x, y, w, h\]"),
                              ("category_id", 12345, r"annotations\[3\].category_id 12345 is not in 'categories'"),
                              ("image_id", -1, r"annotations\[3\].image_id -1 is not in 'images'")):
        broken = json.loads(json.dumps(inst))
        broken["annotations"][3][field] = value
        write_coco(tmp_path / "broken", "train", broken, caps, images=False)
        with pytest.raises(KanvaError, match=r"instances_train.json: " + msg):
            load_coco(tmp_path / "broken", "train")
    write_coco(tmp_path / "broken", "train", inst, caps, images=False)
    load_coco(tmp_path / "broken", "train")  # the intact files load
    (tmp_path / "broken/annotations/captions_train.json").unlink()
    with pytest.raises(KanvaError, match="captions_train.json: no such file"):
        load_coco(tmp_path / "broken", "train")


def test_cli_reports_bad_input_and_exits_2(world, tmp_path, capsys):
    w, seed = world
    assert main(["data", "evolve", "--input", str(seed), "--coco", str(w), "--split", "nope", "--out",
                 str(tmp_path / "o")]) == 2
    assert "instances_nope.json: no such file" in capsys.readouterr().err
    assert main(["data", "evolve", "--input", str(seed), "--coco", str(w), "--split", "train", "--out",
                 str(tmp_path / "o"), "--shard", "3/3"]) == 2
    assert "0..N-1" in capsys.readouterr().err


class CopyOp(Operator):
    """Proposes another lineage's seed unit, verbatim or with one word more: only dedup can stop it."""

    name = "copy_test"

    def __init__(self, seeds: dict[int, list]):
        self.seeds = seeds

    def options(self, ctx, parent):
        others = [u for u in self.seeds[ctx.rec.id] if u.lineage != parent.lineage]
        return [(1.0, lambda c, p, rng: self._copy(rng, others))] if others else []

    def _copy(self, rng, others):
        u = rng.choice(others)
        near = rng.random() < 0.5
        answer = u.answer + (" Indeed." if near else "")
        return [Draft(u.question, answer, u.fmt, "copy.near" if near else "copy.exact", objects=list(u.objects),
                      options=list(u.options))]


def test_duplicates_and_near_duplicates_of_kept_units_are_rejected(world):
    w, seed = world
    coco = load_coco(w, "train")
    items = [it for it in join(load_llava(seed), coco, str(seed), set()) if len(it.units) > 1]
    seeds: dict[int, list] = {}
    for it in items:
        seeds.setdefault(it.rec.id, []).extend(it.units)
    ev = Evolver(coco, load_knowledge(None, coco.category_names), EvolveConfig(), seed=0, rounds=1)
    ev.ops = [(CopyOp(seeds), 1.0)]
    records, _ = ev.run_chunk([(coco.images[i], seeds[i]) for i in sorted(seeds)])
    by = Counter((r["template"], r["reason"]) for r in records)
    assert by[("copy.exact", "duplicate")] > 0 and by[("copy.near", "near_duplicate")] > 0
    assert not by[("copy.exact", None)] and not by[("copy.near", None)]  # every copy was stopped


def test_caps_per_template_and_per_image(world, tmp_path):
    cfg = cfg_with(cap_per_template_per_image=1, cap_per_image=3, max_template_share=1.0, balance_yes_no=False)
    evolve(world, tmp_path / "cap", seed=2, cfg=cfg)
    recs = [r for r in records(tmp_path / "cap") if r.get("round")]
    groups = {(r["image"], r["lineage"], r["round"], r["template"]) for r in recs if r["status"] == "kept"}
    per_template = Counter((img, t) for img, _, _, t in groups)
    per_image = Counter(img for img, _, _, _ in groups)
    assert max(per_template.values()) == 1 and max(per_image.values()) == 3
    reasons = Counter(r["reason"] for r in recs)
    assert reasons["cap_template"] > 0 and reasons["cap_image"] > 0


def test_evolution_without_knowledge_reads_no_kb_and_keeps_the_rest(world, tmp_path):
    full = evolve(world, tmp_path / "full", seed=5, rounds=2)
    bare = evolve(world, tmp_path / "bare", seed=5, rounds=2, cfg=cfg_with(knowledge=False))
    kept = {name: [r for r in records(tmp_path / name) if r.get("status") == "kept" and "operator" in r]
            for name in ("full", "bare")}
    ops = {name: Counter(r["operator"] for r in rs) for name, rs in kept.items()}
    assert ops["full"]["knowledge"] and ops["full"]["multihop"]  # the setting has something to turn off
    assert not ops["bare"]["knowledge"] and not ops["bare"]["multihop"]
    assert not any(r["facts"] for r in kept["bare"])  # no unit cites a KB fact
    # Every lineage still draws once per round: as many candidates, and the other operators fill the draws.
    cands = {name: len({(r["lineage"], r["round"]) for r in records(tmp_path / name) if "operator" in r})
             for name in ("full", "bare")}
    assert cands["bare"] == cands["full"]
    assert sum(ops["bare"].values()) >= 0.8 * sum(ops["full"].values())
    for op in ("count", "exist"):
        assert ops["bare"][op] > ops["full"][op]
    # Recorded as a setting of the run, and the default's record (hence its digest) does not mention it.
    assert json.loads((tmp_path / "bare/run.json").read_text())["evolve"]["knowledge"] is False
    assert "knowledge" not in json.loads((tmp_path / "full/run.json").read_text())["evolve"]
    assert EvolveConfig().digest() != cfg_with(knowledge=False).digest()
    assert full.read_bytes() != bare.read_bytes()


def test_multiple_choice_without_knowledge_draws_no_kb_siblings(world):
    w, seed = world
    coco = load_coco(w, "train")
    kb = load_knowledge(None, coco.category_names)
    ev = Evolver(coco, kb, cfg_with(knowledge=False), seed=0, rounds=1)
    assert len(ev.kb) == 0 and len(kb) > 0
    from kanva.data.ops.choice import object_distractors

    state = ev.new_state(next(iter(coco.images.values())), [])
    import random

    ctx = state.ctx
    for cat in ctx.present:
        got = object_distractors(ctx, cat, random.Random(0))
        assert set(got) <= set(ctx.absent_pool)
        assert len(got) == min(3, len(ctx.absent_pool))


def test_circular_multiple_choice_reaches_the_output_in_every_rotation(world, tmp_path):
    from kanva.data.unit import parse_human

    weights = dict(EvolveConfig().weights, choice=6.0)
    out = evolve(world, tmp_path / "mc", seed=2, rounds=2, cfg=cfg_with(mc_circular=True, weights=weights))
    groups: dict = {}
    for s in load_llava(out):
        h, g = s["conversations"][0]["value"], s["conversations"][1]["value"]
        q, fmt, options = parse_human(h, g)
        if fmt == "mc":
            groups.setdefault((s["image"], q, tuple(sorted(options))), []).append((options, g))
    assert len(groups) >= 10
    for rows in groups.values():
        assert sorted(g for _, g in rows) == list(LETTERS)  # each letter once: no letter is right by habit
        right = {opts[LETTERS.index(g)] for opts, g in rows}
        assert len(right) == 1  # the same option is the answer in every rotation


def test_option_answers_name_the_option_then_its_letter_and_read_back_as_the_letter(world, tmp_path):
    from kanva.data.metrics import units_of
    from kanva.data.unit import mc_letter, parse_human

    weights = dict(EvolveConfig().weights, choice=6.0)
    plain = evolve(world, tmp_path / "letter", seed=2, rounds=2, cfg=cfg_with(mc_circular=True, weights=weights))
    said = evolve(world, tmp_path / "option", seed=2, rounds=2,
                  cfg=cfg_with(mc_circular=True, weights=weights, mc_answer="option"))
    a, b = load_llava(plain), load_llava(said)
    assert [s["id"] for s in a] == [s["id"] for s in b]  # the same units: only the written answer differs
    n = 0
    for x, y in zip(a, b):
        (hx, gx), (hy, gy) = [(s["conversations"][0]["value"], s["conversations"][1]["value"]) for s in (x, y)]
        assert hx == hy
        q, fmt, options = parse_human(hy, gy)
        if fmt != "mc":
            assert gx == gy
            continue
        n += 1
        assert gy == f"{options[LETTERS.index(gx)]} ({gx})"
        assert mc_letter(gy, options) == gx
    assert n >= 40
    # read back (as a seed, or by the data report) the answer is the letter again
    assert [u.answer for u in units_of(b) if u.fmt == "mc"] == [u.answer for u in units_of(a) if u.fmt == "mc"]
    # and as the input of another evolution run: its seed units hold the letter
    items = join(b, load_coco(world[0], "train"), "option.json", set())
    mc = [u for it in items for u in it.units if u.fmt == "mc"]
    assert len(mc) == n and all(u.answer in LETTERS for u in mc)


def test_mc_letter_leaves_other_answers_alone():
    from kanva.data.unit import mc_letter

    opts = ["red", "blue", "green", "yellow"]
    assert mc_letter("blue (B)", opts) == "B"
    assert mc_letter("B", opts) == "B"
    assert mc_letter("red (B)", opts) == "red (B)"  # the text is not option B's: not read as B
    assert mc_letter("blue (E)", opts) == "blue (E)"


def test_follow_up_turns_go_after_their_unit_balanced_and_reproducible(world, tmp_path):
    cfg = cfg_with(follow_up="position", follow_up_turns=3)
    out = evolve(world, tmp_path / "f", cfg=cfg, seed=1)
    assert out.read_bytes() == evolve(world, tmp_path / "f2", cfg=cfg, seed=1).read_bytes()
    recs = records(tmp_path / "f")
    follows = {r["id"]: r for r in recs if r.get("stage") == "follow_up"}
    assert follows and all(r["operator"] == "position.follow_up" for r in follows.values())
    dropped = {r["id"] for r in recs if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    by_parent: dict[str, list[dict]] = {}
    for fid, r in follows.items():
        assert not r["parent"].endswith(tuple(f"+f{k}" for k in (1, 2, 3))) and fid.startswith(r["parent"] + "+f")
        by_parent.setdefault(r["parent"], []).append(r)
    assert max(len(v) for v in by_parent.values()) == 3
    by_id = {s["id"]: s for s in load_llava(out)}
    answers: Counter = Counter()
    for parent, rs in by_parent.items():
        s = by_id.get(parent)
        if parent in dropped:  # the follow-ups leave with their unit
            assert s is None
            continue
        kept = [r for r in sorted(rs, key=lambda r: r["id"]) if r["id"] not in dropped]
        conv = s["conversations"]
        assert len(conv) == 2 + 2 * len(kept) and "<image>" in conv[0]["value"]
        questions = [conv[k]["value"] for k in range(0, len(conv), 2)]
        assert len(set(questions)) == len(questions)  # never the same question twice in a sample
        for k, r in enumerate(kept):
            assert conv[2 + 2 * k]["value"] == f"{r['question']}\nAnswer the question using a single word or phrase."
            assert conv[3 + 2 * k]["value"] == r["answer"]
            answers[r["answer"]] += 1
    assert answers["Yes"] == answers["No"] > 0  # balanced among themselves
    # The units they follow are the same as without follow-ups (nothing else in the run changes).
    plain = {s["id"]: s["conversations"][:2] for s in load_llava(evolve(world, tmp_path / "n", seed=1))}
    assert {k: s["conversations"][:2] for k, s in by_id.items()} == plain
    with pytest.raises(KanvaError, match="follow_up 'count'"):
        evolve(world, tmp_path / "bad", cfg=cfg_with(follow_up="count"))
    with pytest.raises(KanvaError, match="follow_up_turns"):
        evolve(world, tmp_path / "bad2", cfg=cfg_with(follow_up="position", follow_up_turns=0))


def test_position_relations_limit_what_position_asks(world, tmp_path):
    horizontal = ["to the left of", "to the right of"]
    cfg = cfg_with(position_relations=horizontal, follow_up="position", follow_up_turns=2)
    evolve(world, tmp_path / "h", cfg=cfg, seed=1)
    vertical = ("above", "below", "higher up", "lower down")

    def asked(out):  # the position operator's questions and answers, its follow-ups' too
        return [f"{r['question']} {r['answer']}" for r in records(out) if str(r.get("operator")).startswith("position")]

    limited = asked(tmp_path / "h")
    assert limited and all("left" in q or "right" in q for q in limited)
    assert not any(w in q for q in limited for w in vertical)
    # All four by default, so the limit is what removed the vertical ones.
    evolve(world, tmp_path / "all", seed=1)
    assert any(w in q for q in asked(tmp_path / "all") for w in vertical)
    with pytest.raises(KanvaError, match="position_relations"):
        evolve(world, tmp_path / "bad", cfg=cfg_with(position_relations=["beside"]))
    with pytest.raises(KanvaError, match="hard_false_claims"):
        evolve(world, tmp_path / "bad2", cfg=cfg_with(hard_false_claims=1.5))
    with pytest.raises(KanvaError, match="count_option_words 2.0 must be a share"):
        evolve(world, tmp_path / "bad3", cfg=cfg_with(count_option_words=2.0))
