"""Seeds and evolution of multi-image sets and clips on a tiny world: answers checked against the raw annotation
files, the LLaVA-OneVision sample format (through the tiny-ov processor), determinism, resume, the knowledge-free
arm, bad input; and single-image output byte-identical to the code from before sets and clips."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from kanva.cli import main
from kanva.data.config import EvolveConfig
from kanva.data.llava import load_llava
from kanva.data.seed import write_seeds
from kanva.data.sequence_evolve import run_sequence_evolve
from kanva.data.sequence_join import load_sequences
from kanva.data.sequence_seed import make_sequence_seeds

# main just before sets and clips entered kanva.data (issue 29, part 2): single-image output must not change
REFERENCE = "7f7edd3"


@pytest.fixture(scope="module")
def seeded(sequence_world, tmp_path_factory):
    """{kind: seed file} for the fixture world's sets and clips."""
    out = tmp_path_factory.mktemp("seq")
    files = {}
    for kind in ("set", "clip"):
        samples, prov = make_sequence_seeds(load_sequences(sequence_world, "train", kind), ["conversation", "detail"])
        files[kind] = write_seeds(samples, prov, out / f"{kind}.json")
    return files


@pytest.fixture(scope="module")
def evolved(sequence_world, seeded, tmp_path_factory):
    out = tmp_path_factory.mktemp("evo")
    return {k: run_sequence_evolve(seeded[k], sequence_world, "train", out / k, k, progress=False).parent
            for k in ("set", "clip")}


def kept(run: Path) -> list[dict]:
    """The evolved units of a run that reached the output (units.jsonl has every field, slots included)."""
    recs = [json.loads(x) for x in (run / "provenance.jsonl").read_text().splitlines()]
    final = {r["id"] for r in recs if r.get("stage") == "finalize" and r.get("status") == "rejected"}
    units = [json.loads(x) for x in (run / "units.jsonl").read_text().splitlines()]
    return [u for u in units if u["kind"] == "unit" and u["id"] not in final]


def raw(world: Path, name: str) -> dict:
    return json.loads((world / "annotations" / name).read_text())


def answer_text(r: dict) -> str:
    from kanva.words import NUMBER_VALUES

    text = r["options"]["ABCD".index(r["answer"])] if r["fmt"] == "mc" else r["answer"]
    return str(NUMBER_VALUES.get(text, text))  # counts may be options in words ("two")


def test_set_answers_agree_with_the_annotation_file(sequence_world, evolved):
    data = raw(sequence_world, "sets_train.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    per_image: dict[int, Counter] = {}
    for a in data["annotations"]:
        per_image.setdefault(a["image_id"], Counter())[names[a["category_id"]]] += 1
    sets = {s["id"]: s for s in data["sets"]}
    checked = Counter()
    for r in kept(evolved["set"]):
        s, t, ans = sets[r["image_id"]], r["template"], answer_text(r)
        counts = [per_image.get(i, Counter()) for i in s["image_ids"]]
        if t in ("set.which", "set.count", "set.which_yn", "set.count_total", "set.change_short"):
            cat = r["objects"][0] if r["objects"] else r["absent"][0]
        if t == "set.which":
            having = [k for k, c in enumerate(counts) if c[cat]]
            expect = {1: f"Image {having[0] + 1}" if having else "", 0: "Neither image" if len(counts) == 2
                      else "None of them"}.get(len(having), "Both images")
            assert ans == expect, r
        elif t == "set.which_yn":
            assert ans == ("Yes" if counts[r["slots"]["image"] - 1][cat] else "No"), r
        elif t == "set.count":
            assert int(ans) == counts[r["slots"]["image"] - 1][cat], r
        elif t == "set.count_total":
            assert int(ans) == sum(c[cat] for c in counts), r
        elif t == "set.count_distinct":
            assert int(ans) == len({a["track"] for a in data["annotations"] if a["image_id"] in s["image_ids"]
                                    and names[a["category_id"]] == r["objects"][0]}), r
        elif t in ("set.diff", "set.diff_short"):
            i, j = r["slots"]["image"] - 1, r["slots"]["other"] - 1
            for c in ([ans] if t == "set.diff" else r["objects"]):
                assert counts[i][c] and not counts[j][c], r
        elif t in ("set.change", "set.change_short"):
            ch = next(c for c in s["changes"] if c["image"] == r["slots"]["image"] - 1)
            assert ch["category"] in ans and (t == "set.change_short" or ch["op"] == r["params"]["op"]), r
        else:
            continue
        checked[t] += 1
    assert {"set.which", "set.count", "set.diff", "set.change", "set.count_distinct"} <= set(checked), checked


def test_clip_answers_agree_with_the_annotation_file(sequence_world, evolved):
    data = raw(sequence_world, "clips_train.json")
    names = {c["id"]: c["name"] for c in data["categories"]}
    tracks: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        tracks.setdefault(a["video_id"], []).append(a)
    ways = {"left": "to the left", "right": "to the right", None: "it stays in place"}
    checked = Counter()
    for r in kept(evolved["clip"]):
        anns, t, ans = tracks[r["image_id"]], r["template"], answer_text(r)

        def of(c: str, anns: list[dict] = anns) -> list[dict]:
            return [a for a in anns if names[a["category_id"]] == c]

        if t == "clip.motion":
            (a,) = of(r["objects"][0])
            assert ans == ways[a["motion"]["direction"]], r
        elif t == "clip.motion_yn":
            (a,) = of(r["objects"][0])
            assert (ans == "Yes") == (a["motion"]["direction"] == r["slots"]["direction"]), r
        elif t == "clip.mover_way":
            assert any(a["motion"]["direction"] == r["slots"]["direction"] for a in of(ans)), r
            assert not any(a["motion"]["direction"] == r["slots"]["direction"] for o in r["options"] if o != ans
                           for a in of(o)), r
        elif t == "clip.order_mc":
            a, b = r["options"][:2]

            def first(c: str) -> list[int | None]:  # per track of c, the first frame it is clearly visible in
                return [next((t for t, (x, v) in enumerate(zip(o["bboxes"], o["visible"])) if x and v >= 0.3), None)
                        for o in of(c)]

            seen = {c: first(c) for c in (a, b)}
            if not seen[a] and not seen[b]:
                assert ans == "neither is in the video", r
                # asked only of a clip with two objects to order (else "neither" would be most of the answers)
                n = Counter(names[x["category_id"]] for x in anns)
                orderable = [c for c, k in n.items() if k == 1 and first(c)[0] is not None]
                assert len(orderable) >= 2, r
            else:
                (fa,), (fb,) = seen[a], seen[b]
                assert ans == ("they appear at the same time" if fa == fb else a if fa < fb else b), r
        elif t == "clip.count_end":
            assert int(ans) == sum(a["bboxes"][-1] is not None and a["visible"][-1] >= 0.3
                                   for a in of(r["objects"][0])), r
        elif t == "clip.leave":
            assert any(a["motion"]["kind"] == "leave" for a in of(ans)), r
        elif t == "clip.order":
            first = {c: min(a["motion"]["first"] + next(i for i, b in enumerate(a["bboxes"][a["motion"]["first"]:])
                                                        if b is not None) for a in of(c)) for c in r["objects"]}
            assert first[ans] == min(first.values()), r
        else:
            continue
        checked[t] += 1
    assert {"clip.motion", "clip.count_end", "clip.order_mc"} <= set(checked), checked


def test_samples_are_onevision_samples_the_processor_encodes(sequence_world, evolved, tiny_ov_model):
    from kanva.model import KanvaProcessor

    proc = KanvaProcessor.from_pretrained(tiny_ov_model)
    for kind, folder in (("set", "sets"), ("clip", "clips")):
        samples = load_llava(evolved[kind] / "evolved.json")
        mc = [s for s in samples if s["conversations"][1]["value"] in "ABCD"]
        assert mc, kind
        s = mc[0]
        if kind == "set":
            assert isinstance(s["image"], list) and len(s["image"]) >= 2 and "video" not in s
            assert s["conversations"][0]["value"].startswith("Image 1: <image>\nImage 2: <image>\n")
        else:
            assert s["video"].endswith(".mp4") and "image" not in s
            assert s["conversations"][0]["value"].startswith("<video>\n")
        enc = proc.encode(s, image_root=sequence_world / folder / "train", max_length=4096)
        assert sum(x != -100 for x in enc.labels) >= 1


def test_balance_and_provenance(evolved):
    for kind in ("set", "clip"):
        units = kept(evolved[kind])
        answers = Counter(answer_text(u) for u in units if u["fmt"] == "yesno")
        assert answers["Yes"] == answers["No"] > 0, (kind, answers)
        samples = load_llava(evolved[kind] / "evolved.json")
        letters = Counter(s["conversations"][1]["value"] for s in samples if s["conversations"][1]["value"] in "ABCD")
        assert max(letters.values()) - min(letters.values()) <= 1, (kind, letters)
        # every knowledge unit cites its KB fact (subject, relation, value, source), but a certain "no"
        know = [u for u in units if u["operator"].endswith("_knowledge") and not u["params"].get("negative")]
        assert know and all(u["facts"] and len(u["facts"][0]) == 4 for u in know), kind


def test_report_reads_a_set_run(evolved):
    from kanva.data.report import build_summary

    summary = build_summary(evolved["set"])
    units = kept(evolved["set"])
    assert summary["evolved"]["units"] == summary["seed"]["units"] + len(units)
    assert summary["evolved"]["yes_no"]["yes_ratio"] == 0.5
    with_facts = sum(bool(u["facts"]) for u in units)
    assert summary["evolved"]["knowledge_share"] == round(with_facts / summary["evolved"]["units"], 4) > 0


def test_deterministic_and_resumable(sequence_world, seeded, evolved, tmp_path):
    cfg = EvolveConfig(chunk_size=2)
    out = tmp_path / "r"
    run_sequence_evolve(seeded["set"], sequence_world, "train", out, "set", cfg=cfg, stop_after=2, progress=False)
    assert not (out / "evolved.json").exists()
    run_sequence_evolve(seeded["set"], sequence_world, "train", out, "set", cfg=cfg, progress=False)
    whole = run_sequence_evolve(seeded["set"], sequence_world, "train", tmp_path / "w", "set", progress=False).parent
    for name in ("evolved.json", "provenance.jsonl"):
        assert (whole / name).read_bytes() == (evolved["set"] / name).read_bytes()
    assert (out / "evolved.json").read_bytes() == (whole / "evolved.json").read_bytes()  # chunking changes nothing


def test_no_knowledge_turns_off_every_kb_operator(sequence_world, seeded, evolved, tmp_path):
    for kind in ("set", "clip"):
        assert any(u["operator"] == f"{kind}_knowledge" for u in kept(evolved[kind]))
        out = tmp_path / kind
        assert main(["data", "evolve", "--input", str(seeded[kind]), "--coco", str(sequence_world), "--split",
                     "train", "--kind", kind, "--out", str(out), "--no-knowledge", "--quiet"]) == 0
        recs = [json.loads(x) for x in (out / "provenance.jsonl").read_text().splitlines()]
        ops = Counter(r["operator"] for r in recs if "operator" in r)
        assert ops and not any(op.endswith("_knowledge") for op in ops), ops
        assert not any(r.get("facts") for r in recs), kind
        assert json.loads((out / "run.json").read_text())["evolve"]["knowledge"] is False


def test_cli_seed_and_bad_input(sequence_world, tmp_path, capsys):
    out = tmp_path / "clips.json"
    assert main(["data", "seed", "--coco", str(sequence_world), "--split", "train", "--kind", "clip",
                 "--out", str(out)]) == 0
    assert load_llava(out) and all("video" in s for s in load_llava(out))
    assert main(["data", "seed", "--coco", str(sequence_world), "--split", "train", "--kind", "clip",
                 "--out", str(tmp_path / "again.json")]) == 0
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()  # seeds are deterministic too
    assert main(["data", "seed", "--coco", str(sequence_world), "--split", "train", "--kind", "set",
                 "--out", str(tmp_path / "x.json"), "--llm", "local"]) == 2
    assert "--kind set: --llm not supported" in capsys.readouterr().err
    bad = [{"id": "s1", "image": ["nope_0.jpg", "nope_1.jpg"],
            "conversations": [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nHi?"},
                              {"from": "gpt", "value": "Hello."}]}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["data", "evolve", "--input", str(tmp_path / "bad.json"), "--coco", str(sequence_world), "--split",
                 "train", "--kind", "set", "--out", str(tmp_path / "e"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.json: sample 's1'" in err and "nope_0.jpg|nope_1.jpg" in err


def test_single_image_output_unchanged_since_before_sets_and_clips(tmp_path):
    """Seed + evolve of a small synthetic world with the code of REFERENCE and with this code: same bytes."""
    from kanva.data.synth import synth_coco, write_coco

    root = Path(__file__).resolve().parents[1]
    try:
        blob = subprocess.run(["git", "-C", str(root), "archive", REFERENCE, "kanva"], capture_output=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"no git history with {REFERENCE} here")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(tmp_path / "old", filter="data")
    inst, caps = synth_coco(30, seed=4)
    write_coco(tmp_path / "w", "train", inst, caps, images=False)
    outputs = {}
    for tag, code in (("old", tmp_path / "old"), ("new", root)):
        run = tmp_path / tag
        run.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(code)}
        for args in (["seed", "--types", "conversation,detail,reasoning,align"],
                     ["evolve", "--input", "seed.json", "--rounds", "2", "--quiet"]):
            out = "seed.json" if args[0] == "seed" else "evo"
            subprocess.run([sys.executable, "-m", "kanva", "data", *args, "--coco", str(tmp_path / "w"), "--split",
                            "train", "--out", out], cwd=run, env=env, check=True, capture_output=True)
        files = ("seed.json", "seed.provenance.jsonl", "evo/evolved.json", "evo/provenance.jsonl", "evo/units.jsonl",
                 "evo/run.json")
        outputs[tag] = {p: (run / p).read_bytes() for p in files}
    assert outputs["old"] == outputs["new"]


def test_exclude_reads_clip_files_and_benchmark_records(sequence_world, seeded, tmp_path):
    from kanva.data.exclude import read_exclude

    out = run_sequence_evolve(seeded["clip"], sequence_world, "train", tmp_path / "x", "clip", progress=False,
                              exclude=[sequence_world / "annotations" / "clips_train.json"])
    recs = [json.loads(x) for x in (out.parent / "provenance.jsonl").read_text().splitlines()]
    assert load_llava(out) == [] and {r["status"] for r in recs if r.get("stage") == "input"} == {"excluded"}
    (tmp_path / "b.json").write_text(json.dumps([{"image_list": ["images/a_0.jpg", "images/a_1.jpg"]},
                                                 {"video": "video/000800000001.mp4", "question": "?"}]))
    assert read_exclude(tmp_path / "b.json") == {"a_0.jpg", "a_1.jpg", "000800000001.mp4"}


def test_shards_merged_equal_the_whole_run(sequence_world, seeded, evolved, tmp_path):
    from kanva.data.runner import merge_runs

    parts = [run_sequence_evolve(seeded["clip"], sequence_world, "train", tmp_path / f"s{i}", "clip", shard=(i, 2),
                                 progress=False).parent for i in range(2)]
    merged = merge_runs(parts, tmp_path / "m")
    assert merged.read_bytes() == (evolved["clip"] / "evolved.json").read_bytes()
