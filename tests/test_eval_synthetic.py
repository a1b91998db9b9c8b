"""`kanva eval make-synthetic` on a tiny COCO world written here: official formats, true answers, determinism."""

import json
import re
from dataclasses import dataclass, field

import pytest
from PIL import Image

from kanva.cli import main
from kanva.eval.answers import Answer
from kanva.eval.mmbench import load_mmbench, score_mmbench
from kanva.eval.mme import load_mme, score_mme
from kanva.eval.pope import load_pope, score_pope
from kanva.eval.synthetic import make_synthetic
from kanva.eval.synthetic.questions import EXISTENCE, KNOWLEDGE, POSITION

CATS = ["person", "car", "dog", "horse", "sheep", "cow", "giraffe", "bus", "cat"]

# image -> (objects: (category, bbox, color, visible), texts)
SCENES = {
    "a.png": ([("giraffe", [2, 10, 10, 10], None, 1.0), ("cow", [30, 10, 10, 10], "brown", 1.0)], ["EXIT"]),
    "b.png": ([("horse", [2, 2, 8, 8], None, 1.0), ("dog", [20, 2, 5, 5], None, 1.0), ("dog", [30, 2, 5, 5], None, 0.9),
               ("car", [40, 30, 10, 8], "red", 1.0)], []),
    "c.png": ([("person", [5, 5, 5, 20], None, 1.0), ("car", [20, 20, 15, 8], "blue", 1.0), ("dog", [40, 5, 5, 5], None, 0.2)],
              ["STOP", "BUS"]),
    "d.png": ([("cow", [2, 2, 10, 10], "black", 1.0), ("sheep", [20, 2, 10, 10], None, 1.0), ("person", [40, 2, 5, 20], None, 1.0)],
              ["FARM"]),
}


@dataclass
class Concept:
    name: str
    supercategory: str
    hypernyms: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)


class TinyKB:
    """The KB API of docs/design.md (concept, categories_under) over a handful of hand-written facts."""

    def __init__(self):
        H = {
            "giraffe": ["ruminant", "mammal"], "cow": ["ruminant", "mammal"], "sheep": ["ruminant", "mammal"],
            "horse": ["equine", "mammal"], "dog": ["canine", "mammal"], "cat": ["feline", "mammal"],
            "person": ["organism"], "car": ["motor vehicle"], "bus": ["motor vehicle"],
        }
        diet = {"giraffe": "herbivore", "cow": "herbivore", "sheep": "herbivore", "horse": "herbivore",
                "dog": "omnivore", "cat": "carnivore", "person": "omnivore"}
        sup = {"car": "vehicle", "bus": "vehicle", "person": "person"}
        self.c = {}
        for n in CATS:
            facts = {"diet": diet[n]} if n in diet else {"travels_on": "land"}
            if sup.get(n, "animal") == "animal":
                facts["wild_or_domestic"] = "wild" if n == "giraffe" else "domestic"
            self.c[n] = Concept(n, sup.get(n, "animal"), H[n], facts)

    def concept(self, name):
        return self.c[name]

    def categories_under(self, h):
        return [n for n, c in self.c.items() if h in c.hypernyms]

    def holds(self, category, phrase):
        """Independent truth for a knowledge phrase, for the assertions below."""
        from kanva.knowledge.properties import FACT_PHRASES

        c = self.c[category]
        for (kind, value), (_, text) in FACT_PHRASES.items():
            if text == phrase:
                return c.facts.get(kind) == value
        return phrase.removeprefix("any ") in c.hypernyms


@pytest.fixture
def world(tmp_path):
    w = tmp_path / "world"
    (w / "annotations").mkdir(parents=True)
    (w / "test").mkdir()
    images, anns = [], []
    for i, (name, (objs, texts)) in enumerate(sorted(SCENES.items()), 1):
        Image.new("RGB", (64, 48), (10 * i, 100, 200)).save(w / "test" / name)
        images.append({"id": i, "file_name": name, "width": 64, "height": 48, "scene": "field", "seed": i,
                       "texts": [{"text": t, "bbox": [0, 0, 5, 5]} for t in texts]})
        for cat, bbox, color, vis in objs:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": CATS.index(cat) + 1, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0, "color": color, "visible": vis})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(CATS)]}
    (w / "annotations" / "instances_test.json").write_text(json.dumps(coco))
    return w


def slots(table, text):
    """The slot values of `text` under whichever wording of `table` it has (each wording is a template)."""
    return wording(table, text)[1]


def wording(table, text):
    """(index of the wording of `table` that `text` has, its slot values)."""
    for i, t in enumerate(table):
        pattern = re.escape(t)
        for name in re.findall(r"\{(\w+)\}", t):
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+)", 1)
        m = re.fullmatch(pattern, text)
        if m:
            return i, m.groupdict()
    raise AssertionError(f"{text!r} has none of the wordings {table}")


def _gt_answers_mme(data):
    return [Answer(q.uid, q.gt.capitalize()) for q in data.questions]


def test_mme_set_is_true_by_construction(world, tmp_path):
    m = make_synthetic(world, tmp_path / "out", kb=TinyKB(), seed=1)
    data = load_mme(tmp_path / "out" / "mme")
    assert data.layout == "template"
    assert set(data.subtasks()) == {"existence", "count", "position", "color", "OCR", "knowledge"}
    assert m["mme"]["existence"] == 8  # every image: one yes, one no
    by_image = {}
    for q in data.questions:
        by_image.setdefault((q.subtask, q.image), []).append(q.gt)
        assert q.question.endswith("Please answer yes or no.")
        assert (tmp_path / "out" / "mme" / "images" / q.image).is_file()
    assert all(sorted(v) == ["no", "yes"] for v in by_image.values())
    r = score_mme(data, _gt_answers_mme(data))
    assert all(v == 200.0 for v in r["subtasks"].values())
    # The knowledge facts: every yes rests on a clearly visible object, every no on none of the image's objects.
    from kanva.knowledge.properties import FACT_PHRASES

    kb = TinyKB()
    knowledge = [q for q in data.questions if q.subtask == "knowledge"]
    assert len(knowledge) == 8
    sorts = set()
    for q in knowledge:
        phrase = slots(KNOWLEDGE, q.core)["p"]
        objs = SCENES[q.image][0]
        sorts.add("fact" if phrase in {t for _, t in FACT_PHRASES.values()} else "hypernym")
        if q.gt == "yes":
            assert any(kb.holds(c, phrase) for c, _, _, vis in objs if vis >= 0.5), q
        else:
            assert not any(kb.holds(c, phrase) for c, _, _, _ in objs), q
    assert sorts == {"fact", "hypernym"}


def test_count_color_position_facts(world, tmp_path):
    make_synthetic(world, tmp_path / "out", kb=TinyKB(), seed=0)
    qs = load_mme(tmp_path / "out" / "mme").questions
    count_b = [q for q in qs if q.subtask == "count" and q.image == "b.png"]
    # b.png: two clearly visible dogs, one horse, one car; c.png's dog is mostly hidden and never counted
    for q in count_b:
        if "dog" in q.core:
            assert ("two dogs" in q.core) == (q.gt == "yes")
    assert not any(q.subtask == "count" and q.image == "c.png" and "dog" in q.core for q in qs)
    for q in qs:
        if q.subtask == "position" and q.image == "a.png":
            pair = slots(POSITION, q.core)
            assert ((pair["a"], pair["b"]) == ("giraffe", "cow")) == (q.gt == "yes")
        if q.subtask == "color" and q.image == "b.png":
            assert ("red car" in q.core) == (q.gt == "yes")
        if q.subtask == "OCR" and q.image == "c.png" and q.gt == "yes":
            assert '"STOP"' in q.core or '"BUS"' in q.core


def test_mmbench_tsv_circular_rows(world, tmp_path):
    make_synthetic(world, tmp_path / "out", kb=TinyKB(), seed=0)
    data = load_mmbench(tmp_path / "out" / "mmbench" / "mmbench_synthetic.tsv")
    groups = {}
    for r in data.rows:
        groups.setdefault(r.group, []).append(r)
    for rows in groups.values():
        assert len(rows) == len(rows[0].options)  # one pass per option
        # the right option's text is the same in every pass
        assert len({r.options[r.answer] for r in rows}) == 1
    assert any(len(rows) == 2 for rows in groups.values())  # position questions have two options
    perfect = score_mmbench(data, [Answer(str(r.index), r.answer) for r in data.rows])
    assert perfect["overall"] == 100.0
    always_a = score_mmbench(data, [Answer(str(r.index), "A") for r in data.rows])
    assert always_a["overall"] == 0.0  # every group has a pass whose answer is not A
    assert always_a["circ0"] > 0.0


def test_pope_negatives(world, tmp_path):
    make_synthetic(world, tmp_path / "out", kb=TinyKB(), seed=0)
    data = load_pope([tmp_path / "out" / "pope"])
    assert data.splits() == ["random", "popular", "adversarial"]
    for split in data.splits():
        labels = [q.label for q in data.questions if q.split == split]
        assert labels.count("yes") == labels.count("no") > 0
    present = {name: {o[0] for o in objs} for name, (objs, _) in SCENES.items()}
    for q in data.questions:
        cat = q.core.split(" ", 3)[3].removesuffix(" in the image?")
        assert (cat in present[q.image]) == (q.label == "yes")
    # popular on a.png: the absent categories seen in most images are dog, car, person (2 images each)
    pop_a = {q.core for q in data.questions if q.split == "popular" and q.image == "a.png" and q.label == "no"}
    assert pop_a <= {f"Is there a {c} in the image?" for c in ("car", "dog", "person")}
    r = score_pope(data, [Answer(q.uid, q.label) for q in data.questions])
    assert r["mean_f1"] == 1.0


def test_deterministic_for_a_seed_and_cli(world, tmp_path, capsys):
    a = make_synthetic(world, tmp_path / "a", kb=TinyKB(), seed=3)
    b = make_synthetic(world, tmp_path / "b", kb=TinyKB(), seed=3)
    for rel in ("mme/existence.txt", "mme/knowledge.txt", "mmbench/mmbench_synthetic.tsv", "pope/coco_pope_random.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert a["mme"] == b["mme"]
    # The CLI runs with the package's own KB (or without one, saying so) and errors cleanly on a bad world.
    assert main(["eval", "make-synthetic", "--world", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert "instances_test.json" in capsys.readouterr().err


def test_on_a_generated_world_with_the_shipped_kb(tmp_path):
    """The real pipeline: `kanva world generate` output + `kanva.knowledge.load_kb()`; answers re-derived here."""
    try:
        from kanva.knowledge import load_kb
        from kanva.world.config import load_world_config
        from kanva.world.generate import generate_world
    except ImportError as e:
        pytest.skip(f"world or knowledge package not available: {e}")
    from kanva.knowledge.properties import FACT_PHRASES

    w = generate_world(tmp_path / "w", {"test": 16}, seed=5, cfg=load_world_config(None), size=96, workers=1, progress=False)
    m = make_synthetic(w, tmp_path / "s", seed=0)
    assert m["knowledge"] and m["mme"]["knowledge"] > 0 and m["mmbench"]["questions"] > 0
    kb = load_kb()
    coco = json.loads((w / "annotations" / "instances_test.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    objs = {}
    for a in coco["annotations"]:
        objs.setdefault(a["image_id"], []).append((names[a["category_id"]], a.get("visible", 1.0)))
    by_file = {im["file_name"]: objs.get(im["id"], []) for im in coco["images"]}
    facts = {t: kv for kv, (_, t) in FACT_PHRASES.items()}

    def holds(cat, phrase):
        if phrase in facts:
            kind, value = facts[phrase]
            return value in str(kb.concept(cat).facts.get(kind, "")).split(" or ")
        return kb.is_a(cat, phrase.removeprefix("any "))

    data = load_mme(tmp_path / "s" / "mme")
    for q in data.questions:
        if q.subtask == "knowledge":
            phrase = slots(KNOWLEDGE, q.core)["p"]
            if q.gt == "yes":
                assert any(holds(c, phrase) for c, v in by_file[q.image] if v >= 0.5), q
            else:
                assert not any(holds(c, phrase) for c, _ in by_file[q.image]), q
        if q.subtask == "existence":
            cat = slots(EXISTENCE, q.core)["a_x"].split(" ", 1)[1]
            assert (cat in {c for c, _ in by_file[q.image]}) == (q.gt == "yes"), q
    assert score_mme(data, _gt_answers_mme(data))["perception"] == 200.0 * (len(data.subtasks()) - 1)
    # Several wordings per subtask, and a yes/no pair shares one (its wording never tells the answer).
    existence = [q for q in data.questions if q.subtask == "existence"]
    by_image = {}
    for q in existence:
        by_image.setdefault(q.image, set()).add(wording(EXISTENCE, q.core)[0])
    assert all(len(v) == 1 for v in by_image.values())
    assert len(set().union(*by_image.values())) >= 2
