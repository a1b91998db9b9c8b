"""`kanva quickstart --preset onevision`: LLaVA-OneVision's curriculum, single image then OneVision, on one CPU.

world (+ multi-image sets and clips) -> a OneVision model (`smol-ov`, no AnyRes tiles) -> the vision stage with
video frames (kanva/grounding/frames.py) -> seed data for images, sets and clips -> evolution of the set and clip
data with and without the knowledge base (the arms) -> scene text -> the single-image model (the smol
quickstart's reading stage on single-image data) -> per arm a OneVision stage from it, on a mixture of
single-image, multi-image and video samples -> synthetic MME / POPE / MMBench and MUIRBench- / MVBench-style
benchmarks -> every model evaluated on all -> report (kanva/quickstart/onevision_report.py).

Why the stages are text: as in the smol quickstart, a 135M LM learns to read images on 2 cores only because
each image token is exactly the LM embedding of the word for what its patch shows, so a reading stage over
those words ("scene text") carries over to the images. A OneVision model lays tokens out differently for one
image, several images and a video, and the scene text follows it token for token (kanva/grounding/layout.py).
So the OneVision stage is a reading stage too, over the scene text of its mixture; the single-image model is
the same run's first stage, so the comparison is one curriculum before and after its OneVision stage.

The arms (kanva/quickstart/arms.py) are evolved with the knowledge base (`evolved`) or with every operator
that reads it off (`evolved-noknow`). With `onevision.per_arm_single_image` each arm's whole curriculum is its
own: its single-image model reads the arm's single-image data, and its OneVision stage starts from that model and
replays those data, so the knowledge-aware multi-image and video tasks compare the knowledge base against none
at every stage. Without it the arms share one single-image model (the `si_arm`'s data) and differ only in the
OneVision stage's set and clip data; then the noknow arm starts from a model that learnt the knowledge base, and
what it keeps of it depends on the replay share
(docs/experiments/2026-12-06-single-image-replay-in-the-onevision-stage-on-val.md). `onevision.replay_arm` makes
every arm's OneVision stage replay one arm's single-image data instead (the presets: the knowledge-free ones,
docs/experiments/2026-12-07-what-the-onevision-stage-replays-on-val.md). The report's single-image model is
always the `si_arm`'s.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kanva.config import load_yaml
from kanva.data.config import EvolveConfig
from kanva.errors import KanvaError
from kanva.quickstart.arms import ARMS, HEADLINE
from kanva.quickstart.config import OnevisionQuickstartConfig
from kanva.quickstart.pipeline import EVOLVE_DIRS, STEP_SUFFIX, Quickstart, stage_config, sample_count, text_path, kanva
from kanva.quickstart.steps import Step

KINDS = ("set", "clip")  # `kanva data seed|evolve --kind`
SEQUENCE_BENCHMARKS = ("muirbench", "mvbench")
SI_MODEL = "single-image"


class OnevisionQuickstart(Quickstart):
    cfg: OnevisionQuickstartConfig

    def __init__(self, cfg: OnevisionQuickstartConfig, out: str | Path, arms: list[str] | None = None,
                 seeds: list[int] | None = None):
        if seeds is not None and list(seeds) != [cfg.seed]:
            raise KanvaError(f"--seeds: the onevision curriculum trains at the config's seed only ({cfg.seed})")
        arms = list(arms if arms is not None else cfg.arms)
        if "seed" in arms:
            raise KanvaError("--arms: the onevision curriculum compares evolved and evolved-noknow (its set and clip "
                             "data are always evolved)")
        super().__init__(cfg, out, arms=arms, seeds=[cfg.seed])
        self.ov = cfg.onevision
        self.bench_seq = self.out / "bench-sequences"

    # -- models: the single-image model and one OneVision model per arm --------------------------------
    def models(self, seed: int | None = None) -> list[str]:
        return [SI_MODEL, *(f"onevision-{a}" for a in self.arms)]

    def headline_model(self) -> str:
        """The OneVision model the report sets beside the single-image model: the knowledge-evolved arm's."""
        return f"onevision-{HEADLINE[0]}" if HEADLINE[0] in self.arms else self.models()[-1]

    def single_image_benchmarked(self) -> list[str]:
        """The models that answer the single-image benchmarks: the two the report compares on them. The other
        OneVision models answer only the multi-image and video benchmarks, where the knowledge difference is read;
        their single-image answers would be a fifth of the run's evaluation time that no table shows."""
        return [SI_MODEL, self.headline_model()]

    def model_arm(self, model: str) -> tuple[str, int]:
        if model == SI_MODEL:
            return self.ov.si_arm, self.cfg.seed
        if model.removeprefix("onevision-") in self.arms:
            return model.removeprefix("onevision-"), self.cfg.seed
        raise KanvaError(f"quickstart: no model {model!r} among {self.models()}")

    def trained_model(self, name: str) -> Path:
        if name in self.si_models():
            return self.train_dir / name / "read" / "final"
        return self.train_dir / name / "onevision" / "final"

    def lm_stages(self) -> list:
        return [*super().lm_stages(), self.ov.stage]

    def si_data_arm(self, arm: str) -> str:
        """Whose single-image data the arm's curriculum reads: its own, or the shared si_arm's."""
        return arm if self.ov.per_arm_single_image else self.ov.si_arm

    def si_model(self, arm: str) -> str:
        """The single-image model the arm's OneVision stage starts from (`single-image` reads the si_arm's data)."""
        a = self.si_data_arm(arm)
        return SI_MODEL if a == self.ov.si_arm else f"{SI_MODEL}-{a}"

    def replay_arm(self, arm: str) -> str:
        """Whose single-image data the arm's OneVision stage replays: `onevision.replay_arm`, else its curriculum's."""
        return self.ov.replay_arm or self.si_data_arm(arm)

    def si_models(self) -> dict[str, str]:
        """Every single-image model the run trains -> whose single-image data it reads; the report's
        (`single-image`) first, and only it is evaluated."""
        return {self.si_model(a): self.si_data_arm(a) for a in [self.ov.si_arm, *self.arms]}

    def sequence_dir(self, kind: str, evolve: str | None) -> Path:
        """data/<sets|clips>/seed.json, or the folder of one kind of evolution of them."""
        base = self.data / f"{kind}s"
        return base / "seed.json" if evolve is None else base / EVOLVE_DIRS[evolve]

    def media_root(self, kind: str) -> Path:
        return self.world / f"{kind}s" / "train"

    def bench_data(self, bench: str, split: str = "test") -> list[Path]:
        if bench in SEQUENCE_BENCHMARKS:
            return [self.bench_seq / bench]
        return super().bench_data(bench, split)

    # -- steps ------------------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        c, ov = self.cfg, self.ov
        base = {s.name: s for s in super().steps()}
        data_cfg = self.seed_step_config()
        reports = [f"data_report{STEP_SUFFIX[k]}" for k in self.evolve_kinds()]
        s = [replace(base["world"], config=base["world"].config | {"sets": ov.sets, "clips": ov.clips}),
             base["model"], base["vision"], base["labels"], base["seed"],
             *(base[f"evolve{STEP_SUFFIX[k]}"] for k in self.evolve_kinds()), *(base[r] for r in reports)]
        evolve_cfg = self.evolve_step_config() | {"sequence_pack": ov.pack}
        for kind in KINDS:
            s.append(Step(f"seed_{kind}s", lambda k=kind: self.seed_sequences(k), after=["world"], config=data_cfg,
                          help=f"seed instructions about the world's {kind}s"))
            for a in self.arms:
                ev = ARMS[a].evolve
                s.append(Step(f"evolve_{kind}s{STEP_SUFFIX[ev]}", lambda k=kind, e=ev: self.evolve_sequences(k, e),
                              after=[f"seed_{kind}s"], config=evolve_cfg | {"knowledge": ev == "full"},
                              outputs=[self.sequence_dir(kind, ev)],
                              help=f"evolution of the {kind} seeds" + ("" if ev == "full" else " without the KB")))
        s.append(Step("scene_text", self.single_image_text,
                      after=["labels", *(f"evolve{STEP_SUFFIX[k]}" for k in self.evolve_kinds())],
                      help="text-only copies of the single-image mixtures"))
        for a in self.arms:
            s.append(Step(f"scene_text_{a}", lambda a=a: self.sequence_text(a), after=["labels", *self._seq_steps(a)],
                          help=f"text-only copies of the {a} set and clip mixtures"))
        for m, data_arm in self.si_models().items():
            s.append(Step(f"train_{m}", lambda m=m: self.train_single_image(m), after=["scene_text"],
                          config={"read": stage_config(c.train.read)},
                          help=f"the single-image stage (reading) on {ARMS[data_arm].label} data",
                          outputs=[self.train_dir / m]))
        for a in self.arms:
            m = f"onevision-{a}"
            s.append(Step(f"train_{m}", lambda a=a: self.train_onevision(a),
                          after=[f"train_{self.si_model(a)}", "scene_text", f"scene_text_{a}"],
                          config={"onevision": stage_config(ov.stage), "share": ov.single_image_share}
                          | ({"replay": ov.replay_arm} if ov.replay_arm else {}),
                          help=f"the OneVision stage on single-image + {a} multi-image and video data",
                          outputs=[self.train_dir / m]))
        beside = self.reads_beside_vision()
        if beside:
            s.extend(self.graft_step(m) for m in self.models())
        bench = {"pope": c.eval.pope_per_split, "mme": c.eval.mme_images}
        s.append(Step("bench", self.make_bench, after=["world"], config=bench,
                      help="synthetic MME / MMBench / POPE from test images"))
        s.append(Step("bench_sequences", self.make_sequence_bench, after=["world"],
                      help="multi-image (MUIRBench-style) and video (MVBench-style) multiple choice from test sets "
                           "and clips"))
        for m in self.models():
            every = m in self.single_image_benchmarked()
            s.append(Step(f"eval_{m}", lambda m=m: self.evaluate(m),
                          after=[f"{'graft' if beside else 'train'}_{m}", "bench", "bench_sequences"],
                          config=vars(c.eval) | ({} if every else {"single_image": False}),
                          help=f"{'every benchmark' if every else 'the multi-image and video benchmarks'} on the "
                               f"{m} model", outputs=[self.eval_dir / m]))
        s.append(Step("report", self.make_report, after=[f"eval_{m}" for m in self.models()] + reports,
                      config={"arms": self.arms, "onevision": True}, help="markdown + HTML report"))
        return s

    def evolve_kinds(self) -> list[str]:
        """The single-image evolutions the run reads: the si_arm's, and every arm's with per-arm curricula."""
        used = {ARMS[a].evolve for a in self.si_data_arms()}
        return [k for k in EVOLVE_DIRS if k in used]

    def si_data_arms(self) -> list[str]:
        """Every arm whose single-image data the run reads: for a single-image model or for a replay."""
        return list(dict.fromkeys([*self.si_models().values(), *(self.replay_arm(a) for a in self.arms)]))

    def _seq_steps(self, arm: str) -> list[str]:
        return [f"evolve_{k}s{STEP_SUFFIX[ARMS[arm].evolve]}" for k in KINDS]

    # -- step bodies --------------------------------------------------------------------------------------
    def make_world(self) -> dict:
        w = self.cfg.world
        args = ["world", "generate", "--out", self.world, "--train", w.train, "--val", w.val, "--test", w.test,
                "--novel", w.novel, "--seed", self.cfg.seed, "--size", w.size, "--workers", w.workers, "--overwrite",
                "--sets", *(f"{k}={n}" for k, n in self.ov.sets.items()),
                "--clips", *(f"{k}={n}" for k, n in self.ov.clips.items())]
        if w.config:
            args += ["--config", w.config]
        kanva(*args)
        return {"images": {"train": w.train, "test": w.test}, "sets": self.ov.sets, "clips": self.ov.clips}

    def seed_sequences(self, kind: str) -> dict:
        out = self.sequence_dir(kind, None)
        kanva("data", "seed", "--kind", kind, "--coco", self.world, "--split", "train", "--seed", self.cfg.seed,
              "--out", out)
        return {"seed": sample_count(out)}

    def evolve_sequences(self, kind: str, evolve: str) -> dict:
        """Rule operators only, at their default weights (`data.evolve_config` weighs the single-image ones);
        multiple-choice answers are written as the single-image data writes them (its `mc_answer`), since the
        OneVision stage replays that data beside these."""
        d, out = self.cfg.data, self.sequence_dir(kind, evolve)
        args = ["data", "evolve", "--kind", kind, "--input", self.sequence_dir(kind, None), "--coco", self.world,
                "--split", "train", "--out", out, "--rounds", d.rounds, "--llm", "none", "--seed", self.cfg.seed,
                "--pack", self.ov.pack]
        mc_answer = load_yaml(EvolveConfig, d.evolve_config).mc_answer if d.evolve_config else "letter"
        if mc_answer != "letter":
            args += ["--mc-answer", mc_answer]
        if evolve == "noknow":
            args.append("--no-knowledge")
        kanva(*args)
        return {"evolved": sample_count(out / "evolved.json")}

    def _scene_text(self, src: Path) -> int:
        out = text_path(src)
        kanva("grounding", "scene-text", "--input", src, "--coco", self.world, "--split", "train", "--model",
              self.labels, "--out", out)
        return sample_count(out)

    def single_image_text(self) -> dict:
        return {f"single_image/{a}" if a != self.ov.si_arm else "single_image":
                self._scene_text(Path(self.mixture(a)[0]["path"])) for a in self.si_data_arms()}

    def sequence_text(self, arm: str) -> dict:
        ev = ARMS[arm].evolve
        return {k: self._scene_text(self.sequence_dir(k, ev) / "evolved.json") for k in KINDS}

    def train_single_image(self, model: str = SI_MODEL) -> dict:
        start = self.base if self.reads_beside_vision() else self.instruct_start()
        stage = self._budget_stage(model, self.cfg.train.read, self.text_mixture(self.si_models()[model]), start)
        return {"steps": stage.steps, **self._run_recipe(model, start, stage)}

    def onevision_mixture(self, arm: str) -> list[dict]:
        """The arm's set and clip scene text, and the single-image scene text of its replay arm at
        `single_image_share` of the samples (a DataSource ratio is relative to its file's size)."""
        ev = ARMS[arm].evolve
        seq = [{"path": str(text_path(self.sequence_dir(k, ev) / "evolved.json"))} for k in KINDS]
        share = self.ov.single_image_share
        if share == 0:
            return seq
        si = self.text_mixture(self.replay_arm(arm))[0]
        ratio = share / (1 - share) * sum(sample_count(Path(x["path"])) for x in seq) / sample_count(Path(si["path"]))
        return [{**si, "ratio": round(ratio, 6)}, *seq]

    def train_onevision(self, arm: str) -> dict:
        m, start = f"onevision-{arm}", self.trained_model(self.si_model(arm))
        stage = self._budget_stage(m, self.ov.stage, self.onevision_mixture(arm), start)
        return {"steps": stage.steps, **self._run_recipe(m, start, stage)}

    def make_sequence_bench(self) -> dict:
        kanva("eval", "make-synthetic", "--world", self.world, "--out", self.bench_seq, "--split", "test", "--seed",
              self.cfg.seed, "--benchmarks", ",".join(SEQUENCE_BENCHMARKS))
        return json.loads((self.bench_seq / "synthetic.json").read_text())

    def evaluate(self, model: str) -> dict:
        # the single-image benchmarks, as the smol quickstart runs them, for the models the report compares on them
        out = super().evaluate(model) if model in self.single_image_benchmarked() else {}
        e = self.cfg.eval
        for bench in SEQUENCE_BENCHMARKS:  # asked whole (a prefix of a task-ordered file would drop tasks)
            ans = self.answers(model, bench)
            args = ["eval", "run", bench, "--model", self.final_model(model), "--out", ans, "--batch-size",
                    e.batch_size, "--max-new-tokens", e.max_new_tokens, "--results", ans.with_suffix(".results.json"),
                    "--data", *self.bench_data(bench)]
            kanva(*args)
            out[f"test/{bench}"] = str(ans.with_suffix(".results.json"))
        return out

    def make_report(self) -> dict:
        from kanva.quickstart.onevision_report import write_report

        return {k: str(v) for k, v in write_report(self).items()}

