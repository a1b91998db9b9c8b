"""`kanva quickstart`: the whole Kanva loop on one machine, as the steps a user would run by hand.

world -> base model -> vision pretraining -> seed data -> evolved data (with and without the knowledge base)
-> data reports -> align (shared) -> one instruction run per arm and training seed (kanva/quickstart/arms.py;
the same stages and token budget) -> synthetic benchmarks (test, and the `novel` split) -> evaluation of every
model -> report. World, vision stage, seed data and benchmarks are made once and shared by every arm. When the
runs train the LM alone on scene text (the smol recipe), they read nothing the vision stage makes but its label
file, which `labels` writes first: they start from the base model beside the vision stage, and `graft_MODEL`
joins each trained LM to the grounded encoder and projector.

Over 400 lines because the step table (`steps`) and the methods that run each step are read together; what
is not a step lives beside it (steps.py: running and fingerprints; budget.py; arms.py).

Each step calls the same `kanva ...` command a user would (printed as it runs), so the quickstart
exercises the real code paths and its log doubles as a tutorial. Steps are resumable (see steps.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dataclasses import replace

import yaml

from kanva.config import read_yaml, to_dict
from kanva.errors import KanvaError
from kanva.grounding.config import PatchPretrainConfig
from kanva.quickstart.arms import ARMS, model_name
from kanva.quickstart.budget import budget_stage
from kanva.quickstart.config import BudgetStage, QuickstartConfig
from kanva.quickstart.steps import Step, StepRunner
from kanva.train.recipe import DataSource, Stage

EVOLVE_DIRS = {"full": "evolved", "noknow": "evolved-noknow"}  # data/<dir>/ per kind of evolution
STEP_SUFFIX = {"full": "", "noknow": "_noknow"}  # evolve, data_report: the full evolution keeps the plain names


def kanva(*argv: str) -> None:
    """Run one `kanva` command in-process, echoing it; a failure stops the quickstart with its message."""
    from kanva.cli import main

    args = [str(a) for a in argv]
    print("  $ kanva " + " ".join(shlex.quote(a) for a in args), flush=True)
    rc = main(args)
    if rc:
        raise KanvaError(f"`kanva {' '.join(args[:2])}` failed with exit code {rc} (see the message above)")


class Quickstart:
    def __init__(self, cfg: QuickstartConfig, out: str | Path, arms: list[str] | None = None,
                 seeds: list[int] | None = None):
        self.cfg = cfg
        self.arms = list(arms if arms is not None else cfg.arms)
        self.seeds = list(seeds if seeds is not None else [cfg.seed])
        # model name -> (arm, training seed); seeds outer, arms inner (canonical order)
        self._arm_of = {model_name(a, s, cfg.seed): (a, s) for s in self.seeds for a in self.arms}
        # Absolute: the recipes written under OUT/recipes/ name the models by path, and `kanva train` reads a
        # relative path from the recipe's folder, so a relative --out (the default runs/quickstart-PRESET) broke.
        self.out = Path(out).resolve()
        o = self.out
        self.world = o / "world"
        self.base = o / "models" / "base"
        self.vision = o / "models" / "vision"
        self.labels = o / "models" / "labels"
        self.data = o / "data"
        self.seed_file = self.data / "seed.json"
        self.align_file = self.data / "align.json"
        self.train_dir = o / "train"
        self.bench = o / "bench"
        self.bench_novel = o / "bench-novel"
        self.eval_dir = o / "eval"
        self.report_dir = o / "report"

    # -- models: an arm at a training seed ------------------------------------------------------------
    def models(self, seed: int | None = None) -> list[str]:
        """Every model (arm x training seed), or those of one training seed, arms in their canonical order."""
        return [m for m, (_, s) in self._arm_of.items() if seed is None or s == seed]

    def model_arm(self, model: str) -> tuple[str, int]:
        if model not in self._arm_of:
            raise KanvaError(f"quickstart: no model {model!r} among {self.models()}")
        return self._arm_of[model]

    def evolve_kinds(self) -> list[str]:
        return [k for k in EVOLVE_DIRS if any(ARMS[a].evolve == k for a in self.arms)]

    def evolve_dir(self, kind: str) -> Path:
        return self.data / EVOLVE_DIRS[kind]

    def novel(self) -> bool:
        return self.cfg.world.novel > 0

    # -- paths other modules (the report) read ------------------------------------------------------
    def trained_model(self, name: str) -> Path:
        """What the model's training wrote: its last stage's output."""
        if name == "align":
            stage = "align"
        else:  # the image stage, or the reading stage when there is none
            stage = "instruct" if self.cfg.train.instruct is not None else "read"
        return self.train_dir / name / stage / "final"

    def final_model(self, name: str) -> Path:
        """The model that is evaluated: the trained one, or where it trained beside the vision stage, its LM
        grafted onto the vision stage's encoder and projector."""
        if name != "align" and self.reads_beside_vision():
            return self.train_dir / name / "final"
        return self.trained_model(name)

    def reads_beside_vision(self) -> bool:
        """Whether each model's training is the LM alone on scene text (a reading stage that trains only `lm`; no
        align or image stage) on a grounded model. Such training reads nothing the vision stage makes (the scene
        text needs only the label file, which `kanva grounding labels` writes first), so it starts from the base
        model while the encoder trains, and `graft_MODEL` joins the trained LM to the encoder and projector: the
        tensors of the model the stage makes from the vision stage's output (tests/test_train_loop.py)."""
        t = self.cfg.train
        return (self.cfg.vision is not None and t.align is None and t.instruct is None and t.read is not None
                and all(set(st.stage.trainable) == {"lm"} for st in self.lm_stages()))

    def lm_stages(self) -> list:
        """The stages each model trains after the vision stage (the OneVision quickstart adds its own)."""
        return [st for st in (self.cfg.train.read, self.cfg.train.instruct) if st is not None]

    def bench_data(self, bench: str, split: str = "test") -> list[Path]:
        root = self.bench if split == "test" else self.bench_novel
        if bench == "mme":
            return [root / "mme"]
        if bench == "mmbench":
            return [root / "mmbench" / "mmbench_synthetic.tsv"]
        if bench == "pope":
            return sorted((root / "pope").glob("coco_pope_*.json"))
        raise KanvaError(f"quickstart: unknown benchmark {bench!r}; known: mme, mmbench, pope")

    def answers(self, model: str, bench: str, split: str = "test") -> Path:
        return self.eval_dir / model / ("" if split == "test" else split) / f"{bench}.jsonl"

    # -- steps --------------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        c = self.cfg
        s = [
            Step("world", self.make_world, config=self.world_step_config(), help="scenes in COCO format"),
            Step("model", self.make_model, config={"preset": c.preset, "o": c.model_overrides, "seed": c.seed},
                 help=f"build the {c.preset} preset"),
            Step("vision", self.pretrain_vision, after=["world", "model"],
                 config=self.vision_config().fingerprint() if c.vision else None,
                 help="vision encoder on per-patch labels; word-grounded projector", outputs=[self.vision]),
            Step("labels", self.write_labels, after=["world", "model"],
                 config=self.vision_config().fingerprint() if c.vision else None,
                 help="the vision stage's label file, before it trains (what scene text reads)",
                 outputs=[self.labels]),
            Step("seed", self.make_seed, after=["world"], config=self.seed_step_config(),
                 help="seed instructions and align captions from annotations"),
            *[Step(f"evolve{STEP_SUFFIX[k]}", lambda k=k: self.evolve(k), after=["seed"],
                   config=self.evolve_step_config() | ({} if k == "full" else {"knowledge": False}),
                   outputs=[self.evolve_dir(k)],
                   help="knowledge-aware evolution (rules + LLM) with elimination" if k == "full" else
                   "the same evolution with every operator that reads the knowledge base off")
              for k in self.evolve_kinds()],
            *[Step(f"data_report{STEP_SUFFIX[k]}", lambda k=k: self.data_report(k), after=[f"evolve{STEP_SUFFIX[k]}"],
                   help=f"data quality report ({EVOLVE_DIRS[k]})") for k in self.evolve_kinds()],
            Step("align", self.train_align, after=["vision", "seed"], config=stage_config(c.train.align),
                 help="stage 1, shared by every model (skipped when train.align is empty)",
                 outputs=[self.train_dir / "align"]),
        ]
        for a in self.arms:
            s.append(Step(f"scene_text_{a}", lambda a=a: self.make_scene_text(a), after=["labels", *self._data_steps(a)],
                          config={"read": c.train.read is not None},
                          help=f"a text-only copy of the {a} mixture for the reading stage"))
        beside = self.reads_beside_vision()
        for m in self.models():
            a, seed = self.model_arm(m)
            s.append(Step(f"train_{m}", lambda m=m: self.train_instruct(m),
                          after=[*([] if beside else ["align"]), *self._data_steps(a), f"scene_text_{a}"],
                          config={"read": stage_config(c.train.read), "instruct": stage_config(c.train.instruct),
                                  **({"seed": seed} if seed != c.seed else {})},
                          help=f"instruction stages on {ARMS[a].label} (training seed {seed})"
                               + (", beside the vision stage" if beside else ""),
                          outputs=[self.train_dir / m]))
            if beside:
                s.append(self.graft_step(m))
        bench = {"pope": c.eval.pope_per_split, "mme": c.eval.mme_images}
        s.append(Step("bench", self.make_bench, after=["world"], config=bench,
                      help="synthetic MME / MMBench / POPE from test images"))
        if self.novel():
            s.append(Step("bench_novel", lambda: self.make_bench("novel"), after=["world"], config=bench,
                          help="the same benchmarks on the novel split (category pairs never seen together)"))
        for m in self.models():
            s.append(Step(f"eval_{m}", lambda m=m: self.evaluate(m),
                          after=[f"{'graft' if beside else 'train'}_{m}", "bench", *(["bench_novel"] if self.novel() else [])],
                          config=vars(c.eval), help=f"benchmarks on the {m} model", outputs=[self.eval_dir / m]))
        s.append(Step("report", self.make_report,
                      after=[f"eval_{m}" for m in self.models()]
                      + [f"data_report{STEP_SUFFIX[k]}" for k in self.evolve_kinds()],
                      config={"arms": self.arms, "seeds": self.seeds}, help="markdown + HTML report"))
        return s

    def _data_steps(self, arm: str) -> list[str]:
        kind = ARMS[arm].evolve
        return ["seed"] if kind is None else [f"evolve{STEP_SUFFIX[kind]}"]

    def make_world(self) -> dict:
        w = self.cfg.world
        args = ["world", "generate", "--out", self.world, "--train", w.train, "--val", w.val, "--test", w.test,
                "--novel", w.novel, "--seed", self.cfg.seed, "--size", w.size, "--workers", w.workers, "--overwrite"]
        if w.config:
            args += ["--config", w.config]
        kanva(*args)
        return {"images": {"train": w.train, "val": w.val, "test": w.test, "novel": w.novel}}

    def make_model(self) -> dict:
        args = ["model", "build", "--preset", self.cfg.preset, "--out", self.base, "--seed", self.cfg.seed,
                "--force"]
        for k, v in self.cfg.model_overrides.items():
            args += ["--set", f"{k}={json.dumps(v)}"]
        kanva(*args)
        return {"model": str(self.base)}

    def vision_config(self) -> PatchPretrainConfig:
        """The run's vision stage: the config's, on the run's world and seed."""
        return replace(self.cfg.vision, coco=str(self.world), seed=self.cfg.seed)

    def vision_recipe(self) -> Path:
        """OUT/recipes/vision.yaml, which both `kanva grounding pretrain` and `labels` read."""
        return self._write_recipe("vision", to_dict(self.vision_config()))

    def pretrain_vision(self) -> dict:
        if self.cfg.vision is None:
            return {"skipped": True}
        path = self.vision_recipe()
        args = ["grounding", "pretrain", "--model", self.base, "--config", path, "--out", self.vision]
        if self.vision.is_dir():  # left by an interrupted run (the step has no marker): continue it
            args.append("--resume")
        kanva(*args)
        from kanva.grounding.labels import read_label_file

        return read_label_file(self.vision)["metrics"]

    def write_labels(self) -> dict:
        if self.cfg.vision is None:
            return {"skipped": True}
        path = self.vision_recipe()
        kanva("grounding", "labels", "--model", self.base, "--config", path, "--out", self.labels)
        from kanva.grounding.labels import read_label_file

        return {"labels": len(read_label_file(self.labels)["words"])}

    def graft_step(self, model: str) -> Step:
        return Step(f"graft_{model}", lambda: self.graft(model), after=[f"train_{model}", "vision"],
                    help=f"the {model} model: its trained LM with the vision stage's encoder and projector",
                    outputs=[self.final_model(model)])

    def graft(self, model: str) -> dict:
        lm = self.trained_model(model)
        kanva("model", "graft", "--lm", lm, "--vision", self.vision, "--out", self.final_model(model), "--force")
        return {"lm": str(lm), "vision": str(self.vision)}

    def _start_model(self) -> Path:
        return self.vision if self.cfg.vision is not None else self.base

    def make_seed(self) -> dict:
        d = self.cfg.data
        common = ["--coco", self.world, "--split", "train", "--seed", self.cfg.seed]
        if d.limit_images:
            common += ["--limit", d.limit_images]
        kanva("data", "seed", *common, "--out", self.seed_file, "--types", d.seed_types)
        kanva("data", "seed", *common, "--out", self.align_file, "--types", "align")
        return {"seed": sample_count(self.seed_file), "align": sample_count(self.align_file)}

    def seed_step_config(self) -> dict:
        return without(vars(self.cfg.data), "evolve_config") | {"seed": self.cfg.seed}

    def evolve_step_config(self) -> dict:
        """What decides an evolution step's output: the data settings and the evolve config's content (not its
        path: a moved checkout stays current)."""
        d = self.cfg.data
        return without(vars(d), "evolve_config") | {"seed": self.cfg.seed,
                                                     "evolve_config_sha256": content_digest(d.evolve_config)}

    def world_step_config(self) -> dict:
        """What decides the world: its counts, the seed and the world config's content (not its path, nor
        `workers`: the world is the same at any number of workers)."""
        w = self.cfg.world
        return without(vars(w), "workers", "config") | {"seed": self.cfg.seed,
                                                         "config_sha256": content_digest(w.config)}

    def evolve(self, kind: str = "full") -> dict:
        d = self.cfg.data
        out = self.evolve_dir(kind)
        args = ["data", "evolve", "--input", self.seed_file, "--coco", self.world, "--split", "train",
                "--out", out, "--rounds", d.rounds, "--llm", d.llm, "--seed", self.cfg.seed, "--pack", d.pack]
        if d.evolve_config:
            args += ["--config", d.evolve_config]
        if kind == "noknow":
            args.append("--no-knowledge")
        kanva(*args)
        return {"evolved": sample_count(out / "evolved.json")}

    def data_report(self, kind: str = "full") -> dict:
        out = self.evolve_dir(kind)
        kanva("data", "report", out, "--baseline", self.seed_file)
        return {"report": str(out / "report.md")}

    def _write_recipe(self, name: str, recipe: dict) -> Path:
        """OUT/recipes/NAME.yaml: what the step's command reads (a user can rerun it by hand). Written whole, then
        renamed: two steps that run at once (vision, labels) write the same file, and neither reads a half of it."""
        path = self.out / "recipes" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(yaml.safe_dump(recipe, sort_keys=False))
        os.replace(tmp, path)
        return path

    def _run_recipe(self, name: str, model: Path, *stages: Stage, seed: int | None = None) -> dict:
        seed = self.cfg.seed if seed is None else seed
        recipe = {"model": {"path": str(model)}, "seed": seed, "stages": [to_dict(s) for s in stages]}
        path = self._write_recipe(name, recipe)
        out = self.train_dir / name
        args = ["train", "--recipe", path, "--out", out]
        if (out / "recipe.yaml").is_file():  # an interrupted run: continue from its checkpoints
            args.append("--resume")
        kanva(*args)
        summary = out / stages[-1].name / "summary.json"
        return json.loads(summary.read_text()) if summary.is_file() else {}

    def train_align(self) -> dict:
        if self.cfg.train.align is None:  # no align stage: instruction tuning starts from the grounded projector
            return {"skipped": True}
        stage = replace(self.cfg.train.align, data=[DataSource(str(self.align_file), str(self.world / "train"))])
        return self._run_recipe("align", self._start_model(), stage)

    def instruct_start(self) -> Path:
        """What both instruction runs start from: the align stage's output, or the pretrained parts without one."""
        return self.final_model("align") if self.cfg.train.align is not None else self._start_model()

    def mixture(self, arm: str) -> list[dict]:
        root = str(self.world / "train")
        kind = ARMS[arm].evolve
        if kind is None:
            return [{"path": str(self.seed_file), "image_root": root}]
        # evolved.json holds the seed samples too (EvolveConfig.keep_seeds), so this is seed + evolved.
        return [{"path": str(self.evolve_dir(kind) / "evolved.json"), "image_root": root}]

    def text_mixture(self, arm: str) -> list[dict]:
        """The arm's mixture with every image written as scene text (made by its scene_text step)."""
        return [{"path": str(text_path(Path(m["path"])))} for m in self.mixture(arm)]

    def make_scene_text(self, arm: str) -> dict:
        if self.cfg.train.read is None:
            return {"skipped": True}
        done = {}
        for src in [m["path"] for m in self.mixture(arm)]:
            out = text_path(Path(src))
            kanva("grounding", "scene-text", "--input", src, "--coco", self.world, "--split", "train",
                  "--model", self.labels, "--out", out)
            done[str(out)] = sample_count(out)
        return done

    def _budget_stage(self, model: str, plan: BudgetStage, mix: list[dict], start: Path) -> Stage:
        return budget_stage(model, plan, mix, start, seed=self.cfg.seed)

    def train_instruct(self, model: str) -> dict:
        t = self.cfg.train
        arm, seed = self.model_arm(model)
        start = self.base if self.reads_beside_vision() else self.instruct_start()
        stages = []
        if t.read is not None:
            stages.append(self._budget_stage(model, t.read, self.text_mixture(arm), start))
        if t.instruct is not None:
            stages.append(self._budget_stage(model, t.instruct, self.mixture(arm), start))
        summary = self._run_recipe(model, start, *stages, seed=seed)
        return {"steps": stages[-1].steps, "stages": {s.name: s.steps for s in stages}, **summary}

    def make_bench(self, split: str = "test") -> dict:
        root = self.bench if split == "test" else self.bench_novel
        kanva("eval", "make-synthetic", "--world", self.world, "--out", root, "--split", split, "--seed", self.cfg.seed)
        info = json.loads((root / "synthetic.json").read_text())
        k = self.cfg.eval.pope_per_split
        if k:  # POPE files list each image's yes/no questions together: a prefix keeps them balanced
            for f in self.bench_data("pope", split):
                lines = [x for x in f.read_text().splitlines() if x.strip()]
                f.write_text("\n".join(lines[:k]) + "\n")
            info["pope_per_split"] = k
        n = self.cfg.eval.mme_images
        if n:  # both questions of an image stay together: MME scores images as pairs
            for f in sorted((root / "mme").glob("*.txt")):
                lines = [x for x in f.read_text().splitlines() if x.strip()]
                keep = sorted({x.split("\t")[0] for x in lines})[:n]
                f.write_text("\n".join(x for x in lines if x.split("\t")[0] in keep) + "\n")
            info["mme_images"] = n
        return info

    def evaluate(self, model: str) -> dict:
        e = self.cfg.eval
        out = {}
        for split in ("test", "novel") if self.novel() else ("test",):
            for bench in e.benchmarks:
                ans = self.answers(model, bench, split)
                args = ["eval", "run", bench, "--model", self.final_model(model), "--out", ans, "--batch-size",
                        e.batch_size, "--max-new-tokens", e.max_new_tokens, "--results", ans.with_suffix(".results.json")]
                args += ["--data", *self.bench_data(bench, split)]  # one --data with every file (nargs="+")
                if bench == "mmbench" and e.mmbench_limit:
                    args += ["--limit", e.mmbench_limit]
                kanva(*args)
                out[f"{split}/{bench}"] = str(ans.with_suffix(".results.json"))
        return out

    def make_report(self) -> dict:
        from kanva.quickstart.report import write_report

        paths = write_report(self)
        return {k: str(v) for k, v in paths.items()}

    def run_in_process(self, name: str, forced: bool) -> None:
        """Run one step as `kanva quickstart --only STEP` in a process of its own, its output in OUT/logs/STEP.log
        (what --jobs does: concurrent steps keep their own torch threads, memory and log)."""
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "kanva", "quickstart", "--preset", self.cfg.source, "--out", str(self.out),
               "--only", name, "--arms", ",".join(self.arms), "--seeds", ",".join(map(str, self.seeds))]
        cmd += ["--force", name] if forced else []
        with open(log, "w", encoding="utf-8") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        if rc:
            raise KanvaError(f"exit code {rc}; its log: {log}")

    def run(self, force: list[str] | None = None, until: str | None = None, jobs: int = 1,
            only: str | None = None) -> dict:
        t0 = time.time()
        results = StepRunner(self.out, self.steps()).run(force=force, until=until, only=only, jobs=jobs,
                                                         run_one=self.run_in_process)
        if only is not None:
            return results
        times = {k: v["seconds"] for k, v in results.items()}
        (self.out / "times.json").write_text(json.dumps(times, indent=1))
        print(f"quickstart: {len(results)} steps, {sum(times.values()):.0f} s of work "
              f"({time.time() - t0:.0f} s in this run); report: {self.report_dir / 'report.md'}")
        return results


def text_path(path: Path) -> Path:
    """Where the scene-text copy of a mixture file goes: beside it, `.text` before the suffix."""
    return path.with_name(f"{path.stem}.text{path.suffix}")


def sample_count(path: Path) -> int:
    return len(json.loads(path.read_text()))


# Stage fields added after runs existed, each with the default that trains as before: fingerprinted only when set,
# so that adding a field to Stage redoes no finished step of a run that does not use it.
UNFINGERPRINTED_DEFAULTS = {"lm_frozen_layers": 0}


def stage_config(stage: Stage | BudgetStage | None) -> dict | None:
    """A stage template as the JSON its step's fingerprint is made of."""
    if stage is None:
        return None
    d = to_dict(stage)
    fields = d["stage"] if isinstance(stage, BudgetStage) else d
    for k, default in UNFINGERPRINTED_DEFAULTS.items():
        if fields.get(k) == default:
            del fields[k]
    return d


def content_digest(path: str | None) -> str | None:
    """A YAML config's settings as part of a step's fingerprint: its path alone would let an edited file go
    unnoticed and the step be skipped; its bytes would redo the step for an edited comment."""
    if not path:
        return None
    settings = json.dumps(read_yaml(path), sort_keys=True, default=str)
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


def without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}
