"""Synthetic world-like COCO annotations and a small knowledge base, for tests and benchmarks.

`synth_coco` draws scenes the way the knowledge world does (objects of a scene's typical categories, boxes,
recorded colours, visibility, printed words, captions), deterministically from a seed, entirely in memory;
`write_coco` writes them (with tiny PNGs) in the COCO layout `kanva data` reads. Some captions mention an
object that is not annotated, as real captions do, so tests can check that absent objects avoid them.
`MiniKB` implements the KB API of docs/design.md over a handful of concepts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from kanva.data.vocab import CATEGORIES
from kanva.words import counted, join_list, with_article

# COCO's category ids skip these numbers (the 91-id scheme of the original paper).
_ID_GAPS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
COCO_IDS = tuple(i for i in range(1, 91) if i not in _ID_GAPS)
_SUPER = {
    "person": "person",
    "vehicle": "bicycle|car|motorcycle|airplane|bus|train|truck|boat",
    "outdoor": "traffic light|fire hydrant|stop sign|parking meter|bench",
    "animal": "bird|cat|dog|horse|sheep|cow|elephant|bear|zebra|giraffe",
    "accessory": "backpack|umbrella|handbag|tie|suitcase",
    "sports": "frisbee|skis|snowboard|sports ball|kite|baseball bat|baseball glove|skateboard|surfboard|tennis racket",
    "kitchen": "bottle|wine glass|cup|fork|knife|spoon|bowl",
    "food": "banana|apple|sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake",
    "furniture": "chair|couch|potted plant|bed|dining table|toilet",
    "electronic": "tv|laptop|mouse|remote|keyboard|cell phone",
    "appliance": "microwave|oven|toaster|sink|refrigerator",
    "indoor": "book|clock|vase|scissors|teddy bear|hair drier|toothbrush",
}
SUPERCATEGORY = {name: sup for sup, names in _SUPER.items() for name in names.split("|")}
COCO_CATEGORY_LIST = [{"id": i, "name": n, "supercategory": SUPERCATEGORY[n]} for i, n in zip(COCO_IDS, CATEGORIES)]

SCENES = {
    "savanna": ("giraffe", "zebra", "elephant", "bird", "person", "car"),
    "street": ("car", "bus", "truck", "bicycle", "person", "traffic light", "stop sign", "bench", "dog"),
    "kitchen": ("cup", "bowl", "knife", "fork", "spoon", "banana", "apple", "pizza", "oven", "sink", "bottle"),
    "living room": ("couch", "chair", "tv", "laptop", "book", "clock", "remote", "potted plant", "cat", "dog"),
    "farm": ("cow", "sheep", "horse", "dog", "person", "bird", "truck"),
    "park": ("person", "dog", "frisbee", "bench", "kite", "bicycle", "sports ball", "umbrella"),
}
COLORED = {"car", "bus", "truck", "bicycle", "cup", "bowl", "chair", "couch", "umbrella", "kite", "frisbee", "book",
           "bench", "sports ball"}
PALETTE = ("red", "blue", "green", "yellow", "white", "black", "orange")
WORDS = ("STOP", "CAFE", "OPEN", "SALE", "EXIT", "PARK", "HOTEL", "BAKERY", "TAXI", "MARKET")


def _box(rng: random.Random, w: int, h: int) -> list[float]:
    bw, bh = rng.uniform(0.08, 0.35) * w, rng.uniform(0.08, 0.35) * h
    return [round(rng.uniform(0, w - bw), 1), round(rng.uniform(0, h - bh), 1), round(bw, 1), round(bh, 1)]


def synth_coco(n_images: int, seed: int = 0, texts: bool = True, colors: bool = True,
               extra_caption_share: float = 0.2) -> tuple[dict, dict]:
    """(instances, captions) COCO dicts for `n_images` world-like images, deterministic in `seed`."""
    rng = random.Random(seed)
    images, anns, caps = [], [], []
    cat_id = {c["name"]: c["id"] for c in COCO_CATEGORY_LIST}
    scenes = sorted(SCENES)
    for k in range(n_images):
        iid = k + 1
        w, h = 640, 480
        scene = rng.choice(scenes)
        pool = SCENES[scene]
        cats = rng.sample(pool, rng.randint(1, min(4, len(pool))))
        objs = []
        for c in cats:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                objs.append(c)
        printed = []
        if texts and rng.random() < 0.3:
            for _ in range(rng.randint(1, 2)):
                printed.append({"text": rng.choice(WORDS), "bbox": _box(rng, w, h)})
        images.append({"id": iid, "file_name": f"{iid:06d}.png", "width": w, "height": h, "scene": scene,
                       "seed": seed * 1_000_003 + iid, "texts": printed})
        for c in objs:
            box = _box(rng, w, h)
            color = rng.choice(PALETTE) if colors and c in COLORED and rng.random() < 0.7 else None
            visible = round(rng.choice((1.0, 1.0, 0.9, 0.7, 0.5, 0.2)), 2)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat_id[c], "bbox": box,
                         "area": round(box[2] * box[3] * 0.8, 1), "iscrowd": 0, "color": color, "visible": visible})
        counts: dict[str, int] = {}
        for c in objs:
            counts[c] = counts.get(c, 0) + 1
        main = join_list([counted(c, n) for c, n in sorted(counts.items())[:3]])
        lines = [f"A {scene} with {main}.", f"{with_article(scene).capitalize()} scene showing {main}."]
        if rng.random() < extra_caption_share:  # a caption that mentions an object nobody annotated
            extra = rng.choice([c for c in ("person", "dog", "bird", "car", "cup") if c not in counts] or ["bench"])
            lines.append(f"There is {with_article(extra)} somewhere near the {cats[0]}.")
        for line in lines:
            caps.append({"id": len(caps) + 1, "image_id": iid, "caption": line})
    info = {"description": "kanva.data.synth world-like annotations", "seed": seed}
    instances = {"info": info, "images": images, "annotations": anns, "categories": COCO_CATEGORY_LIST}
    captions = {"info": info, "images": images, "annotations": caps}
    return instances, captions


def write_coco(root: str | Path, split: str, instances: dict, captions: dict, images: bool = True) -> Path:
    """Write the COCO layout: root/annotations/{instances,captions}_{split}.json and root/{split}/*.png."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(captions))
    if images:
        from PIL import Image

        (root / split).mkdir(parents=True, exist_ok=True)
        for im in instances["images"]:
            Image.new("RGB", (8, 6), (im["id"] % 256, 90, 160)).save(root / split / im["file_name"])
    return root


# -- a small KB with the API of kanva.knowledge (docs/design.md) ------------------------------------------------
@dataclass
class Fact:
    subject: str
    relation: str
    value: str
    source: str


@dataclass
class Concept:
    name: str
    coco_id: int
    supercategory: str
    gloss: str
    hypernyms: list[str]
    places: list[str] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


_MINI = {
    # name: (hypernyms nearest first, uses, places, parts, facts)
    "giraffe": (["ruminant", "herbivore", "mammal", "animal"], [], ["savanna"], ["neck", "hoof"], {"diet": "herbivore"}),
    "zebra": (["equine", "herbivore", "mammal", "animal"], [], ["savanna"], ["mane", "hoof"], {"diet": "herbivore"}),
    "cow": (["ruminant", "herbivore", "mammal", "animal"], ["milk production"], ["farm"], ["udder", "hoof"],
            {"diet": "herbivore"}),
    "sheep": (["ruminant", "herbivore", "mammal", "animal"], ["wool production"], ["farm"], ["fleece", "hoof"],
              {"diet": "herbivore"}),
    "horse": (["equine", "herbivore", "mammal", "animal"], ["riding"], ["farm"], ["mane", "hoof"],
              {"diet": "herbivore"}),
    "elephant": (["proboscidean", "herbivore", "mammal", "animal"], [], ["savanna"], ["trunk", "tusk"],
                 {"diet": "herbivore"}),
    "dog": (["canine", "carnivore", "mammal", "animal"], ["companionship"], ["home"], ["tail", "paw"],
            {"diet": "omnivore"}),
    "cat": (["feline", "carnivore", "mammal", "animal"], ["companionship"], ["home"], ["whisker", "paw"],
            {"diet": "carnivore"}),
    "bird": (["vertebrate", "animal"], [], ["sky"], ["wing", "beak"], {"diet": "omnivore"}),
    "person": (["primate", "mammal"], [], ["city"], ["hand", "head"], {"diet": "omnivore"}),
    "car": (["motor vehicle", "vehicle"], ["driving people around"], ["road"], ["wheel", "windshield"], {}),
    "bus": (["motor vehicle", "public transport", "vehicle"], ["carrying many passengers"], ["road"],
            ["wheel", "door"], {}),
    "truck": (["motor vehicle", "vehicle"], ["hauling cargo"], ["road"], ["wheel", "trailer"], {}),
    "bicycle": (["human-powered vehicle", "vehicle"], ["cycling"], ["road"], ["pedal", "chain"], {}),
    "knife": (["cutlery", "utensil"], ["cutting food"], ["kitchen"], ["blade", "handle"], {}),
    "fork": (["cutlery", "utensil"], ["picking up food"], ["kitchen"], ["tine", "handle"], {}),
    "spoon": (["cutlery", "utensil"], ["eating soup"], ["kitchen"], ["bowl of the spoon", "handle"], {}),
    "cup": (["drinking vessel", "container"], ["drinking"], ["kitchen"], ["rim", "handle"], {}),
    "bowl": (["dish", "container"], ["holding food"], ["kitchen"], ["rim", "base"], {}),
    "bottle": (["container"], ["holding liquids"], ["kitchen"], ["cap", "neck"], {}),
    "banana": (["fruit", "food"], ["eating"], ["kitchen"], ["peel", "stem"], {"taste": "sweet"}),
    "apple": (["fruit", "food"], ["eating"], ["kitchen"], ["core", "stem"], {"taste": "sweet"}),
    "pizza": (["baked dish", "food"], ["eating"], ["restaurant"], ["crust", "topping"], {"taste": "savory"}),
    "oven": (["kitchen appliance", "appliance"], ["baking"], ["kitchen"], ["door", "rack"], {}),
    "sink": (["plumbing fixture"], ["washing dishes"], ["kitchen"], ["faucet", "drain"], {}),
    "couch": (["seat", "furniture"], ["sitting"], ["living room"], ["cushion", "armrest"], {}),
    "chair": (["seat", "furniture"], ["sitting"], ["living room"], ["leg", "backrest"], {}),
    "tv": (["display device", "electronic device"], ["watching shows"], ["living room"], ["screen", "stand"], {}),
    "laptop": (["computer", "electronic device"], ["computing"], ["office"], ["keyboard", "screen"], {}),
    "book": (["publication"], ["reading"], ["library"], ["page", "cover"], {}),
    "clock": (["timepiece"], ["telling time"], ["living room"], ["dial", "hand"], {}),
    "remote": (["controller", "electronic device"], ["changing channels"], ["living room"], ["button", "battery"],
               {}),
    "potted plant": (["plant"], ["decoration"], ["living room"], ["pot", "leaf"], {}),
    "traffic light": (["signal"], ["controlling traffic"], ["road"], ["lamp", "pole"], {}),
    "stop sign": (["traffic sign", "signal"], ["controlling traffic"], ["road"], ["pole", "face"], {}),
    "bench": (["seat", "furniture"], ["sitting"], ["park"], ["slat", "leg"], {}),
    "frisbee": (["toy", "sports equipment"], ["playing catch"], ["park"], ["rim"], {}),
    "kite": (["toy"], ["flying in the wind"], ["park"], ["string", "tail"], {}),
    "sports ball": (["ball", "sports equipment"], ["playing games"], ["park"], ["surface"], {}),
    "umbrella": (["canopy"], ["keeping off rain"], ["street"], ["canopy cloth", "handle"], {}),
}


class MiniKB:
    """A small KB (about 40 of the 80 COCO categories) with the kanva.knowledge API."""

    def __init__(self) -> None:
        self._c: dict[str, Concept] = {}
        ids = {c["name"]: c["id"] for c in COCO_CATEGORY_LIST}
        for name, (hyp, uses, places, parts, facts) in _MINI.items():
            self._c[name] = Concept(name, ids[name], SUPERCATEGORY[name], f"a {name}", list(hyp), list(places),
                                    list(uses), list(parts), dict(facts),
                                    {"hypernyms": "minikb", "uses": "minikb", "places": "minikb",
                                     "parts": "minikb", "facts": "minikb"})
        self.categories = list(CATEGORIES)

    def concept(self, name: str) -> Concept:
        if name not in self._c:
            raise KeyError(name)
        return self._c[name]

    def is_a(self, name: str, hypernym: str) -> bool:
        return name in self._c and hypernym in self._c[name].hypernyms

    def facts(self, name: str) -> list[Fact]:
        c = self.concept(name)
        out = [Fact(name, "is_a", h, "minikb") for h in c.hypernyms]
        out += [Fact(name, "used_for", u, "minikb") for u in c.uses]
        out += [Fact(name, "found_in", p, "minikb") for p in c.places]
        out += [Fact(name, "has_part", p, "minikb") for p in c.parts]
        out += [Fact(name, k, v, "minikb") for k, v in c.facts.items()]
        return out

    def categories_under(self, hypernym: str) -> list[str]:
        return sorted(n for n, c in self._c.items() if hypernym in c.hypernyms)

    def siblings(self, name: str) -> list[str]:
        c = self.concept(name)
        near = c.hypernyms[0] if c.hypernyms else None
        return sorted(n for n, o in self._c.items() if n != name and (near in o.hypernyms[:1]
                                                                    or o.supercategory == c.supercategory))
