"""The quickstart's settings: one YAML (`recipes/quickstart-<preset>.yaml`) per preset.

Every number that decides the experiment lives here, so a reader can see the whole design at once:
world size, vision pretraining, data generation, the two instruction-tuning runs and the evaluation.
Relative paths resolve against the YAML file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanva.config import load_yaml
from kanva.errors import KanvaError


@dataclass
class WorldPart:
    train: int = 2000
    val: int = 100
    test: int = 100
    novel: int = 0
    size: int = 224
    config: str | None = None  # a world YAML (kanva/world/config.py); None: the shipped world
    workers: int = 2


@dataclass
class VisionPart:
    """Per-patch pretraining of the vision encoder on the world's boxes (kanva/train/patch_pretrain.py)."""

    enabled: bool = True
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    # Label kinds (patch_pretrain.LABEL_KINDS): also "side" (left/right) and "count" (one, two, ...) per object,
    # and "plural" ("dogs" instead of "dog" where the image holds several).
    labels: list[str] = field(default_factory=lambda: ["category", "color", "text"])
    # "alternate": colour and category on alternate columns; "beside": the colour on the patch before the
    # object's, "around": on the object's patches but its centre's (both with object_cells "center"); see
    # patch_pretrain.py
    color_cells: str = "shared"
    object_cells: str = "cover"  # "center": each object on the one patch of its box centre (patch_pretrain.py)
    grounding: str = "scaled"  # "saturating": a patch past the threshold gives exactly its word (ground_projector)
    # Label kinds a patch holds at most one of ("count"): grounded at the unweighted decision boundary
    # (PatchPretrainConfig.exclusive)
    exclusive: list[str] = field(default_factory=list)


@dataclass
class DataPart:
    seed_types: str = "conversation,detail,reasoning"
    rounds: int = 3
    llm: str = "local"  # none | local | an OpenAI-compatible URL
    evolve_config: str | None = None  # EvolveConfig YAML (kanva/data/config.py)
    pack: int = 4  # evolved question-answer units per training sample (turns of one conversation)
    limit_images: int | None = None  # seed/evolve only the first N train images


@dataclass
class TrainPart:
    """Stage fields as in kanva/train/recipe.py (`data` is filled in by the quickstart)."""

    align: dict[str, Any] = field(default_factory=dict)  # empty: no align stage (both runs start from `vision`)
    # A text-only reading stage before `instruct`, on each run's own mixture with every image written as its
    # scene text (kanva/train/scene_text.py). Empty: none. Needs the vision pretraining stage.
    read: dict[str, Any] = field(default_factory=dict)
    read_tokens: int = 0
    # The image stage. Empty: none (then `read` is each run's only stage and its model is the one evaluated).
    instruct: dict[str, Any] = field(default_factory=dict)
    # Both instruction runs see this many training tokens (steps derived from each mixture's mean length).
    instruct_tokens: int = 60000


@dataclass
class EvalPart:
    benchmarks: list[str] = field(default_factory=lambda: ["mme", "mmbench", "pope"])
    batch_size: int = 16
    # Short answers are all these benchmarks parse (yes/no, a letter); a cap keeps a rambling model cheap.
    max_new_tokens: int = 8
    mmbench_limit: int | None = None  # the first N rows (circular rotations count one each; groups are kept whole)
    pope_per_split: int | None = None  # keep the first N questions of each POPE split (None: all)
    mme_images: int | None = None  # keep the questions of the first N test images per MME subtask (None: all)
    gallery: int = 12  # test images shown in the report with both models' answers
    bootstrap: int = 1000  # resamples for confidence intervals


@dataclass
class QuickstartConfig:
    preset: str = "smol"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys, as `kanva model build --set`
    seed: int = 0
    world: WorldPart = field(default_factory=WorldPart)
    vision: VisionPart = field(default_factory=VisionPart)
    data: DataPart = field(default_factory=DataPart)
    train: TrainPart = field(default_factory=TrainPart)
    eval: EvalPart = field(default_factory=EvalPart)
    source: str = field(default="", init=False)


def recipes_dir() -> Path:
    """`recipes/` of the source checkout (the quickstart configs are recipes like any other)."""
    return Path(__file__).resolve().parents[2] / "recipes"


def load_quickstart_config(preset_or_path: str) -> QuickstartConfig:
    p = Path(preset_or_path)
    if not p.suffix:
        p = recipes_dir() / f"quickstart-{preset_or_path}.yaml"
        if not p.is_file():
            known = sorted(q.stem.removeprefix("quickstart-") for q in recipes_dir().glob("quickstart-*.yaml"))
            raise KanvaError(f"no quickstart config for preset {preset_or_path!r} ({p}); known: {known}")
    cfg = load_yaml(QuickstartConfig, p)
    cfg.source = str(p)
    if cfg.world.config is not None:
        wc = Path(cfg.world.config)
        cfg.world.config = str(wc if wc.is_absolute() else (p.resolve().parent / wc))
    for name in ("evolve_config",):
        v = getattr(cfg.data, name)
        if v is not None and not Path(v).is_absolute():
            setattr(cfg.data, name, str(p.resolve().parent / v))
    if not cfg.train.read and not cfg.train.instruct:
        raise KanvaError(f"{p}: train.read and train.instruct are both empty; the runs need at least one stage")
    if cfg.train.read and not cfg.vision.enabled:
        raise KanvaError(f"{p}: train.read needs vision.enabled (scene text uses the vision stage's patch labels)")
    from kanva.train.patch_pretrain import check_color_cells, check_exclusive, check_grounding, check_object_cells

    check_color_cells(cfg.vision.color_cells, f"{p}: vision.color_cells")
    check_object_cells(cfg.vision.object_cells, cfg.vision.color_cells, f"{p}: vision.object_cells")
    check_grounding(cfg.vision.grounding, f"{p}: vision.grounding")
    check_exclusive(cfg.vision.exclusive, cfg.vision.labels, f"{p}: vision.exclusive")
    if cfg.world.train < 1 or cfg.world.test < 1:
        raise KanvaError(f"{p}: world.train and world.test must be >= 1")
    return cfg
