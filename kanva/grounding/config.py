"""PatchPretrainConfig: every setting of the vision stage, read strictly from YAML (`kanva grounding pretrain
--config FILE`) or held by the quickstart's config; `check` names the file and field at fault."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kanva.config import load_yaml
from kanva.errors import KanvaError
from kanva.grounding.labels import check_cells, check_kinds

GROUNDINGS = ("scaled", "saturating")  # projector.ground_projector


@dataclass
class OnevisionGrounding:
    """What a OneVision model adds to the stage (kanva/grounding/frames.py, layout.py): the word its newline
    feature becomes, and video frames labelled on the grid transformers pools them to."""

    newline: str = "|"  # image_newline := this word's input embedding; scene text writes it where the feature goes
    frames_per_step: int = 16  # clip frames per step beside `batch_size` images (0: none; the model reads no video)
    clips: int = 0  # the first N clips of the split give their frames (0: all)


@dataclass
class PatchPretrainConfig:
    coco: str = ""  # COCO root: annotations/instances_{split}.json and {split}/ images
    split: str = "train"
    val_split: str | None = "val"
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05  # on the shared schedule (kanva/train/schedule.py): warmup, then cosine to 0
    min_cover: float = 0.2  # a patch is labelled with a box when the box covers this share of it
    labels: list[str] = field(default_factory=lambda: ["category", "color", "text"])  # labels.LABEL_KINDS
    hflip: bool = True
    color_cells: str = "shared"  # where a coloured object's colour goes (labels.COLOR_CELLS)
    object_cells: str = "cover"  # which patches carry an object (labels.OBJECT_CELLS)
    # How a label's confidence becomes its word in the image token (projector.ground_projector): "scaled", the
    # word in proportion to the logit (relu-like, one hidden unit per label, `sharpen`); "saturating", exactly
    # the word once the logit is past 0.5 / `slope` (clamp(slope * logit + 0.5, 0, 1), two hidden units per label).
    grounding: str = "scaled"
    sharpen: float = 3.0  # "scaled": projector label rows = classifier x sharpen
    slope: float = 1.0  # "saturating": the clamp's slope per unit of logit
    # Label kinds of which a patch holds at most one (the number words: an object has one number), grounded at
    # the unweighted decision boundary (projector.exclusive_shifts).
    exclusive: list[str] = field(default_factory=list)
    max_images: int = 0  # 0 = all images of the split
    seed: int = 0
    log_every: int = 10
    save_every: int = 200  # steps between resume checkpoints (OUT/checkpoints/step-N); 0: none
    keep_checkpoints: int = 1
    # OneVision models only (null: its defaults there; an error on a Llava model).
    onevision: OnevisionGrounding | None = None

    def fingerprint(self) -> dict:
        """The settings as a step's fingerprint (kanva/quickstart/steps.py); `onevision` only when set, so a Llava
        run's is what it was before OneVision grounding existed and its finished steps stay finished."""
        d = dataclasses.asdict(self)
        return d if d["onevision"] is not None else {k: v for k, v in d.items() if k != "onevision"}

    def check(self, where: str = "vision pretraining") -> PatchPretrainConfig:
        """Every check a value can fail before any model is loaded; errors name `where` and the field."""
        check_kinds(self.labels, f"{where}: labels")
        check_cells(self.color_cells, self.object_cells, where)
        if self.grounding not in GROUNDINGS:
            raise KanvaError(f"{where}: grounding must be one of {list(GROUNDINGS)}, got {self.grounding!r}")
        bad = [k for k in self.exclusive if k not in self.labels]
        if bad:
            raise KanvaError(f"{where}: exclusive: {bad} not among the trained label kinds {self.labels}")
        for name in ("steps", "batch_size", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise KanvaError(f"{where}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("save_every", "max_images"):
            if getattr(self, name) < 0:
                raise KanvaError(f"{where}: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "sharpen", "slope"):
            if not getattr(self, name) > 0:
                raise KanvaError(f"{where}: {name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise KanvaError(f"{where}: warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        ov = self.onevision
        if ov is not None and (ov.frames_per_step < 0 or ov.clips < 0 or not ov.newline.strip()):
            raise KanvaError(f"{where}: onevision: frames_per_step and clips must be >= 0 and newline a word, got "
                             f"{ov.frames_per_step}, {ov.clips}, {ov.newline!r}")
        if not 0 < self.min_cover <= 1:
            raise KanvaError(f"{where}: min_cover must be in (0, 1], got {self.min_cover}")
        return self


def load_pretrain_config(path: str) -> PatchPretrainConfig:
    return load_yaml(PatchPretrainConfig, path).check(str(path))
