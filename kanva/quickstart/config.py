"""The quickstart's settings: one YAML (`recipes/quickstart-<preset>.yaml`) per preset.

Every number that decides the experiment lives here, so a reader can see the whole design at once:
world size, vision pretraining, data generation, the arms (kanva/quickstart/arms.py) and their instruction-tuning
runs, and the evaluation.
Relative paths resolve against the YAML file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kanva.config import from_dict, read_yaml, to_dict
from kanva.errors import KanvaError
from kanva.eval.bootstrap import N_BOOT
from kanva.grounding.config import PatchPretrainConfig
from kanva.quickstart.arms import DEFAULT_ARMS, parse_arms
from kanva.train.recipe import DataSource, Stage, check_stage


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
class DataPart:
    seed_types: str = "conversation,detail,reasoning"
    rounds: int = 3
    llm: str = "local"  # none | local | an OpenAI-compatible URL
    evolve_config: str | None = None  # EvolveConfig YAML (kanva/data/config.py)
    pack: int = 4  # evolved question-answer units per training sample (turns of one conversation)
    limit_images: int | None = None  # seed/evolve only the first N train images


@dataclass
class BudgetStage:
    """A stage of every arm's run that sees a token budget: `steps` = tokens / (batch x the mixture's mean encoded
    length), so every arm trains on the same number of tokens."""

    stage: Stage  # its `data` (each run's own mixture) and `steps` are filled in by the quickstart
    tokens: int


@dataclass
class TrainPart:
    """The runs' stages, each a recipe Stage (kanva/train/recipe.py) less what the quickstart fills in.

    In the YAML each is a mapping of Stage fields (`read` and `instruct` with `tokens` instead of `steps`); an
    empty or absent one is no stage."""

    align: Stage | None = None  # shared by both runs, on the align captions; None: both start from `vision`
    # A text-only reading stage before `instruct`, on each run's own mixture with every image written as its
    # scene text (kanva/grounding/scene_text.py). Needs the vision stage.
    read: BudgetStage | None = None
    instruct: BudgetStage | None = None  # the image stage; None: `read` is each run's only stage


@dataclass
class EvalPart:
    benchmarks: list[str] = field(default_factory=lambda: ["mme", "mmbench", "pope"])
    batch_size: int = 16
    # Short answers are all these benchmarks parse (yes/no, a letter); a cap keeps a rambling model cheap.
    max_new_tokens: int = 8
    mmbench_limit: int | None = None  # the first N rows (circular rotations count one each; groups are kept whole)
    pope_per_split: int | None = None  # keep the first N questions of each POPE split (None: all)
    mme_images: int | None = None  # keep the questions of the first N test images per MME subtask (None: all)
    gallery: int = 12  # test images shown in the report with every arm's answers
    bootstrap: int = N_BOOT  # resamples for confidence intervals


@dataclass
class QuickstartConfig:
    preset: str = "smol"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys, as `kanva model build --set`
    seed: int = 0
    # The compared models (kanva/quickstart/arms.py): seed, evolved-noknow, evolved; `--arms` overrides.
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    world: WorldPart = field(default_factory=WorldPart)
    # The vision stage (kanva/grounding); its `coco` and `seed` are the run's. null: none (the runs start
    # from the built model).
    vision: PatchPretrainConfig | None = field(default_factory=PatchPretrainConfig)
    data: DataPart = field(default_factory=DataPart)
    train: TrainPart = field(default_factory=TrainPart)
    eval: EvalPart = field(default_factory=EvalPart)
    source: str = field(default="", init=False)


@dataclass
class OnevisionPart:
    """The OneVision curriculum (kanva/quickstart/onevision.py): the world's sets and clips (their test counts
    size the multi-image and video benchmarks, asked whole) and the OneVision stage (a `BudgetStage`, like
    `train.read`)."""

    sets: dict[str, int]  # multi-image sets per split (`kanva world generate --sets`), e.g. {train: 600, test: 150}
    clips: dict[str, int]  # clips per split (`--clips`)
    stage: BudgetStage  # in the YAML a mapping of Stage fields with `tokens`; data filled per arm
    single_image_share: float = 0.5  # of the OneVision stage's samples, the share drawn from single-image data
    si_arm: str = "evolved"  # whose single-image data the report's single-image model reads (shared: every arm's)
    # Per arm: each arm's OneVision stage starts from a single-image model trained on that arm's own single-image
    # data and replays it, so the arms differ in their whole curriculum; shared: one single-image model (si_arm's).
    per_arm_single_image: bool = False
    # Whose single-image data every arm's OneVision stage replays; null: the data its single-image model read.
    replay_arm: str | None = None
    pack: int = 1  # evolved set / clip questions per sample (`kanva data evolve --pack`): turns over one set or clip


@dataclass
class OnevisionQuickstartConfig(QuickstartConfig):
    onevision: OnevisionPart | None = None


PRESET_FILES = {"onevision": "onevision-smol.yaml", "onevision-tiny": "onevision-tiny.yaml"}


def recipes_dir() -> Path:
    """`recipes/` of the source checkout (the quickstart configs are recipes like any other)."""
    return Path(__file__).resolve().parents[2] / "recipes"


def _stage(raw: Any, name: str, where: str, budget: bool) -> Stage | BudgetStage | None:
    """A stage template from its YAML mapping, checked as a recipe stage would be (errors name file and field)."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise KanvaError(f"{where}: expected a mapping of stage fields, got {type(raw).__name__}")
    fields = dict(raw)
    tokens = fields.pop("tokens", None) if budget else None
    filled = ("name", "data", "steps", "epochs") if budget else ("name", "data")
    for k in filled:
        if k in fields:
            raise KanvaError(f"{where}.{k}: set by the quickstart" + (" (steps from `tokens`)" if budget else ""))
    if budget and not (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 1):
        raise KanvaError(f"{where}.tokens: the stage's training tokens per run, an integer >= 1; got {tokens!r}")
    defaults = {"template": "plain"} if name == "align" else {}
    stage = from_dict(Stage, {"name": name, "data": [], **defaults, **fields, **({"steps": 1} if budget else {})},
                      where)
    check_stage(replace(stage, data=[DataSource("each run's mixture")]), where)
    if budget:
        stage.steps = None
        return BudgetStage(stage, tokens)
    return stage


def load_quickstart_config(preset_or_path: str) -> QuickstartConfig:
    p = Path(preset_or_path)
    if not p.suffix:
        p = recipes_dir() / PRESET_FILES.get(preset_or_path, f"quickstart-{preset_or_path}.yaml")
        if not p.is_file():
            known = sorted([q.stem.removeprefix("quickstart-") for q in recipes_dir().glob("quickstart-*.yaml")]
                           + list(PRESET_FILES))
            raise KanvaError(f"no quickstart config for preset {preset_or_path!r} ({p}); known: {known}")
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise KanvaError(f"{p}: expected a mapping at the top level")
    ov = raw.pop("onevision", None)
    train = raw.pop("train", None) or {}
    if not isinstance(train, dict):
        raise KanvaError(f"{p}.train: expected a mapping with align, read, instruct")
    unknown = sorted(set(train) - {"align", "read", "instruct"})
    if unknown:
        raise KanvaError(f"{p}.train: unknown field(s) {unknown}; known: ['align', 'instruct', 'read']")
    cfg = from_dict(QuickstartConfig if ov is None else OnevisionQuickstartConfig, raw, where=str(p))
    if ov is not None:
        cfg.onevision = _onevision_part(ov, f"{p}.onevision")
    cfg.train = TrainPart(_stage(train.get("align"), "align", f"{p}.train.align", budget=False),
                          _stage(train.get("read"), "read", f"{p}.train.read", budget=True),
                          _stage(train.get("instruct"), "instruct", f"{p}.train.instruct", budget=True))
    cfg.source = str(p)
    cfg.arms = parse_arms(cfg.arms, f"{p}: arms")
    if cfg.world.config is not None:
        wc = Path(cfg.world.config)
        cfg.world.config = str(wc if wc.is_absolute() else (p.resolve().parent / wc))
    for name in ("evolve_config",):
        v = getattr(cfg.data, name)
        if v is not None and not Path(v).is_absolute():
            setattr(cfg.data, name, str(p.resolve().parent / v))
    if cfg.train.read is None and cfg.train.instruct is None:
        raise KanvaError(f"{p}: train.read and train.instruct are both empty; the runs need at least one stage")
    if cfg.train.read is not None and cfg.vision is None:
        raise KanvaError(f"{p}: train.read needs the vision stage (scene text uses its patch labels); vision is null")
    if cfg.vision is not None:
        for name in ("coco", "seed"):
            if getattr(cfg.vision, name) != getattr(PatchPretrainConfig, name):
                raise KanvaError(f"{p}.vision.{name}: set by the quickstart (its world and seed)")
        cfg.vision.check(f"{p}.vision")
    if cfg.world.train < 1 or cfg.world.test < 1:
        raise KanvaError(f"{p}: world.train and world.test must be >= 1")
    return cfg


def _onevision_part(raw: Any, where: str) -> OnevisionPart:
    if not isinstance(raw, dict):
        raise KanvaError(f"{where}: expected a mapping with sets, clips, stage, ...")
    fields = dict(raw)
    stage = _stage(fields.pop("stage", None), "onevision", f"{where}.stage", budget=True)
    if stage is None:
        raise KanvaError(f"{where}.stage: the OneVision stage is required (Stage fields with `tokens`)")
    part = from_dict(OnevisionPart, {**fields, "stage": {"stage": to_dict(stage.stage), "tokens": stage.tokens}}, where)
    part.stage = stage
    for name in ("sets", "clips"):
        counts = getattr(part, name)
        if not counts.get("train") or not counts.get("test") or any(n < 0 for n in counts.values()):
            raise KanvaError(f"{where}.{name}: needs train and test counts >= 1 (the data and the benchmark), got {counts}")
    if not 0 <= part.single_image_share < 1:
        raise KanvaError(f"{where}.single_image_share: must be in [0, 1), got {part.single_image_share}")
    if part.pack < 1:
        raise KanvaError(f"{where}.pack: questions per sample must be >= 1, got {part.pack}")
    parse_arms([part.si_arm], f"{where}.si_arm")
    if part.replay_arm is not None:
        parse_arms([part.replay_arm], f"{where}.replay_arm")
        if part.replay_arm == "seed":
            raise KanvaError(f"{where}.replay_arm: the replay is evolved single-image data (evolved or evolved-noknow), "
                             "got seed")
    return part
