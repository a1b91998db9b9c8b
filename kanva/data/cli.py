"""`kanva data seed|evolve|merge|report`: instruction data from annotations, evolved with world knowledge.

Heavy modules (numpy, transformers, matplotlib) are imported inside the handlers so `kanva --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys


TYPES_DEFAULT = "conversation,detail,reasoning"
# LLaVA-Instruct's prompt folder names -> Kanva's seed types
FOLDER_TYPES = {"conversation": "conversation", "detail_description": "detail", "complex_reasoning": "reasoning"}


def _endpoint_args(p: argparse.ArgumentParser, timeout: float) -> None:
    p.add_argument("--llm-model", default=None, help="model name for an OpenAI-compatible URL (default: the "
                   "endpoint's first model)")
    p.add_argument("--workers", type=int, default=8, help="concurrent requests to an LLM URL (default: 8)")
    p.add_argument("--timeout", type=float, default=timeout, help=f"seconds per LLM request (default: {timeout:g})")
    p.add_argument("--retries", type=int, default=3, help="retries per LLM request, with backoff (default: 3)")


def _llm_args(p: argparse.ArgumentParser, default: str, choices_help: str) -> None:
    p.add_argument("--llm", default=default, help=f"{choices_help} (default: {default})")
    p.add_argument("--llm-cache", default=None, help="disk cache of LLM replies (default: OUT's llm_cache)")
    _endpoint_args(p, 60.0)
    p.add_argument("--batch-size", type=int, default=8, help="batch size of the local model (default: 8)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the local model (default: torch's)")


def _kb_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kb", default=None, help="knowledge base JSON (default: the curated COCO KB; build one for "
                   "any vocabulary with `kanva knowledge build`)")


def _kind_arg(p: argparse.ArgumentParser, image: str) -> None:
    p.add_argument("--kind", choices=("image", "set", "clip"), default="image",
                   help=f"image ({image}, default), set (the world's multi-image sets: --coco is the world, "
                   "DIR/annotations/sets_SPLIT.json) or clip (its clips: DIR/annotations/clips_SPLIT.json)")


def _sequence_only(args: argparse.Namespace, **unsupported: bool) -> None:
    """Options of the single-image path that --kind set|clip does not take: an error, never ignored."""
    from kanva.errors import KanvaError

    bad = [name for name, given in unsupported.items() if given]
    if bad:
        raise KanvaError(f"--kind {args.kind}: {', '.join(bad)} not supported here (sets and clips are seeded "
                         "and evolved by rules; their seeds use no knowledge base)")
    if len(args.coco if isinstance(args.coco, list) else [args.coco]) != 1 or not args.split:
        raise KanvaError(f"--kind {args.kind}: give the world as one --coco DIR, with --split")


def _kb(args: argparse.Namespace):
    from kanva.knowledge import load_kb

    return load_kb(args.kb) if args.kb else None


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="seed, evolve and report instruction data",
                                 description=__doc__.splitlines()[0])
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = sub.add_parser("seed", help="seed instructions (conversation, detail, reasoning, align) from annotations")
    p.add_argument("--coco", required=True, help="annotation root: DIR/annotations/{instances,captions}_SPLIT.json")
    p.add_argument("--split", required=True, help="split name, e.g. train or train2017")
    p.add_argument("--out", required=True, help="output LLaVA JSON (provenance goes to OUT.provenance.jsonl)")
    _kind_arg(p, "seed the still images")
    p.add_argument("--types", default=TYPES_DEFAULT,
                   help="comma-separated: conversation,detail,reasoning,align (default: the first three; sets "
                   "and clips: conversation,detail)")
    _llm_args(p, "rules", "rules, local, local:DIR or an OpenAI-compatible URL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", action="append", default=[], help="file of images to leave out (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (by id)")
    p.add_argument("--prompts", default=None, help="with --llm URL|local: a prompt folder in LLaVA's layout "
                   "(system_message.txt, NNN_caps.txt/NNN_conv.txt few-shot pairs), sent as LLaVA did; the type "
                   "is the folder's (conversation, detail_description, complex_reasoning) unless --types says")
    _kb_arg(p)
    p.set_defaults(func=_seed)

    p = sub.add_parser("evolve", help="evolve instructions with rules, the KB and optionally an LLM")
    p.add_argument("--input", required=True, help="LLaVA JSON/JSONL to evolve (e.g. from `kanva data seed`, or a "
                   "LLaVA-665K-style mixture)")
    p.add_argument("--coco", action="append", default=[],
                   help="annotations of (some of) the input's images: a COCO root DIR (with --split) or an instances "
                   "JSON file (repeatable; images in none of them are grounded by the objects their answers name)")
    p.add_argument("--split", default=None, help="split of the --coco roots, e.g. train or train2017")
    p.add_argument("--out", required=True, help="output directory (evolved.json, provenance.jsonl, ...)")
    p.add_argument("--rounds", type=int, default=3)
    _kind_arg(p, "evolve single-image samples")
    _llm_args(p, "none", "none, local, local:DIR or an OpenAI-compatible URL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", default="0/1", help="i/N: evolve only shard i (0-based) of N; merge with `data merge`")
    p.add_argument("--exclude", action="append", default=[],
                   help="images never to output: image list, LLaVA file or POPE/MME question file (repeatable)")
    p.add_argument("--config", default=None, help="YAML overriding evolution settings (kanva/data/config.py)")
    p.add_argument("--judge", action="store_true", help="have the LLM judge every LLM-made candidate")
    p.add_argument("--mc-circular", action="store_true", help="emit all 4 rotations of multiple-choice questions")
    p.add_argument("--mc-answer", choices=["letter", "option"], default=None,
                   help="how multiple-choice answers are written: the letter ('B', default) or the option's text "
                        "and its letter ('blue (B)')")
    p.add_argument("--pack", type=int, default=None, help="units per output sample (multi-turn), default 1")
    p.add_argument("--no-knowledge", action="store_true",
                   help="evolve without the knowledge base: every operator that reads it is off (a control arm)")
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming a run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _kb_arg(p)
    p.set_defaults(func=_evolve)

    p = sub.add_parser("caption", help="ALLaVA's recipe: a vision teacher (OpenAI-compatible URL) writes a "
                       "fine-grained caption, then a complex question and a detailed answer, from the image")
    _caption_args(p)
    p.add_argument("--llm", required=True, help="an OpenAI-compatible URL serving a vision model (e.g. `kanva serve`); "
                   "images are sent as base64 image_url parts")
    _endpoint_args(p, 120.0)
    p.add_argument("--steps", default="caption,qa", help="caption, or caption,qa (default)")
    p.set_defaults(func=_caption)

    p = sub.add_parser("recaption", help="OneVision's recipe: re-caption images with a Kanva model, in-process and "
                       "batched")
    _caption_args(p)
    p.add_argument("--model", required=True, help="a Kanva model directory (from `kanva train` or `kanva model build`)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: 8)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--steps", default="caption", help="caption (default), or caption,qa")
    p.set_defaults(func=_caption)

    p = sub.add_parser("merge", help="merge finished shard directories into one output")
    p.add_argument("shards", nargs="+", help="the --out directories of the shards")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_merge)

    p = sub.add_parser("report", help="quality report (markdown, HTML, summary.json) of an evolve directory")
    p.add_argument("dir", help="a `kanva data evolve` output directory")
    p.add_argument("--baseline", default=None, help="LLaVA file to compare with (default: the evolve input)")
    p.add_argument("--coco", action="append", default=None,
                   help="annotations, as for evolve (default: the ones recorded in run.json)")
    p.add_argument("--split", default=None)
    p.set_defaults(func=_report)

    # The command's old name, kept for one release (0.x): `kanva grounding scene-text` is the same command.
    from kanva.grounding.cli import add_scene_text

    add_scene_text(sub, "scene-text", note="; an alias of `kanva grounding scene-text`, kept for one release")

    p = sub.add_parser("convert", help="convert a benchmark's official release to LLaVA-format training files",
                       description="scienceqa: problems.json + pid_splits.json -> llava_<split>_<format>.json in "
                       "LLaVA's prompt formats (see kanva/data/scienceqa.py)")
    p.add_argument("dataset", choices=("scienceqa",))
    p.add_argument("--data", required=True, help="the release folder (problems.json, pid_splits.json, images/)")
    p.add_argument("--out", help="output folder (default: --data)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated (default: train,val,test)")
    p.add_argument("--formats", default="CQM-A,QCM-LEA", help="comma-separated LLaVA prompt formats "
                   "(default: CQM-A,QCM-LEA; also QCM-A, QCM-LEPA, CQM-LEA, ...)")
    p.set_defaults(func=_convert)

    data.set_defaults(func=lambda a: (data.print_help(), 1)[1])


def _convert(args: argparse.Namespace) -> int:
    from kanva.data.scienceqa import convert

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    for w in convert(args.data, args.out, split(args.splits), split(args.formats)):
        print(f"wrote {w['file']}: {w['samples']} samples, {w['images']} with an image")
    return 0


def _backend(args: argparse.Namespace, default_cache):
    from kanva.data.llm import make_backend

    cache = args.llm_cache or default_cache
    return make_backend(args.llm, cache_dir=cache, model=args.llm_model, workers=args.workers,
                        timeout=args.timeout, retries=args.retries, batch_size=args.batch_size,
                        threads=args.threads)


def _seed_sequences(args: argparse.Namespace) -> int:
    from kanva.data.exclude import read_excludes
    from kanva.data.seed import provenance_path, write_seeds
    from kanva.data.sequence_join import load_sequences
    from kanva.data.sequence_seed import TYPES, make_sequence_seeds

    # set and clip seeds use no knowledge base (knowledge comes with evolution)
    _sequence_only(args, **{"--llm": args.llm != "rules", "--prompts": bool(args.prompts), "--kb": bool(args.kb)})
    seqs = load_sequences(args.coco, args.split, args.kind)
    types = list(TYPES) if args.types == TYPES_DEFAULT else [t.strip() for t in args.types.split(",") if t.strip()]
    samples, prov = make_sequence_seeds(seqs, types, seed=args.seed, exclude=read_excludes(args.exclude),
                                        limit=args.limit)
    write_seeds(samples, prov, args.out)
    rejected = sum(r["status"] == "rejected" for r in prov)
    print(f"wrote {len(samples)} samples about {args.kind}s to {args.out} ({rejected} candidates rejected; see "
          f"{provenance_path(args.out)})")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.kind != "image":
        return _seed_sequences(args)

    from kanva.data.coco import load_coco
    from kanva.data.exclude import read_excludes
    from kanva.data.runner import load_knowledge
    from kanva.data.seed import make_seeds, provenance_path, write_seeds

    coco = load_coco(args.coco, args.split)
    if args.limit is not None:
        keep = sorted(coco.images)[: args.limit]
        coco.images = {i: coco.images[i] for i in keep}
    kb = load_knowledge(_kb(args), coco.category_names)
    out = Path(args.out)
    backend = _backend(args, out.parent / "llm_cache")
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    prompts = None
    if args.prompts:
        from kanva.data.prompt_folder import PromptFolder
        from kanva.errors import KanvaError

        if backend is None:
            raise KanvaError("--prompts needs an LLM (--llm URL, local or local:DIR)")
        prompts = PromptFolder.load(args.prompts)
        if args.types == TYPES_DEFAULT:  # the folder names its type, as LLaVA's folders do
            types = [FOLDER_TYPES.get(prompts.path.name, prompts.path.name)]
    samples, prov = make_seeds(coco, kb, types, seed=args.seed, backend=backend,
                               exclude=read_excludes(args.exclude), prompts=prompts)
    write_seeds(samples, prov, out)
    rejected = sum(r["status"] == "rejected" for r in prov)
    print(f"wrote {len(samples)} samples to {out} ({rejected} candidates rejected; see {provenance_path(out)})")
    return 0


def _evolve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kanva.config import load_yaml
    from kanva.data.config import EvolveConfig
    from kanva.data.join import parse_shard
    from kanva.data.runner import run_evolve

    shard = parse_shard(args.shard)
    cfg = load_yaml(EvolveConfig, args.config) if args.config else EvolveConfig()
    if args.judge:
        cfg.judge = True
    if args.mc_circular:
        cfg.mc_circular = True
    if args.mc_answer is not None:
        cfg.mc_answer = args.mc_answer
    if args.pack is not None:
        cfg.pack = args.pack
    if args.no_knowledge:
        cfg.knowledge = False
    out = Path(args.out)
    if args.kind != "image":
        from kanva.data.sequence_evolve import run_sequence_evolve

        _sequence_only(args, **{"--llm": args.llm != "none", "--judge": args.judge})
        path = run_sequence_evolve(args.input, args.coco[0], args.split, out, args.kind, rounds=args.rounds,
                                   seed=args.seed, shard=shard, exclude=args.exclude, cfg=cfg, kb=_kb(args),
                                   overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {path} and {out / 'provenance.jsonl'}", file=sys.stderr)
        return 0
    backend = _backend(args, out / "llm_cache")
    path = run_evolve(args.input, args.coco, args.split, out, rounds=args.rounds, seed=args.seed, shard=shard,
                      exclude=args.exclude, cfg=cfg, backend=backend, llm_spec=args.llm, overwrite=args.overwrite,
                      kb=_kb(args),
                      progress=not args.quiet, freeze_gc=True)
    print(f"wrote {path} and {out / 'provenance.jsonl'}", file=sys.stderr)
    return 0


def _caption_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", default=None, help="a folder of images (searched recursively)")
    p.add_argument("--coco", default=None, help="COCO root with --split: its images, and annotations for the "
                   "hallucination check and CHAIR (with --images: annotations looked up by base name)")
    p.add_argument("--split", default=None)
    p.add_argument("--out", required=True, help="output LLaVA JSON (provenance goes to OUT.provenance.jsonl)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=400, help="tokens per reply (default: 400)")
    p.add_argument("--llm-cache", default=None, help="disk cache of replies (default: OUT's folder/llm_cache)")


def _caption(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kanva.data.caption import collect_images, run_caption
    from kanva.data.coco import load_coco
    from kanva.data.llm.cache import DiskCache
    from kanva.data.seed import provenance_path, write_seeds
    from kanva.errors import KanvaError

    if args.coco and not args.split:
        raise KanvaError("--coco needs --split")
    coco = load_coco(args.coco, args.split) if args.coco else None
    items = collect_images(coco, args.images, args.limit)
    out = Path(args.out)
    cache = DiskCache(args.llm_cache or out.parent / "llm_cache")
    if getattr(args, "model", None):
        from kanva.data.llm.kanva_model import KanvaModelBackend

        backend = KanvaModelBackend(args.model, batch_size=args.batch_size, cache=cache, threads=args.threads)
    else:
        from kanva.data.llm.openai_backend import OpenAIBackend

        if not args.llm.startswith(("http://", "https://")):
            raise KanvaError(f"--llm {args.llm!r}: expected an http(s):// URL of an OpenAI-compatible endpoint")
        backend = OpenAIBackend(args.llm, model=args.llm_model, workers=args.workers, timeout=args.timeout,
                                retries=args.retries, cache=cache)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    samples, prov = run_caption(items, backend, steps, seed=args.seed, max_tokens=args.max_tokens)
    write_seeds(samples, prov, out)
    rejected = sum(r["status"] == "rejected" for r in prov)
    print(f"wrote {len(samples)} samples from {len(items)} images to {out} ({rejected} replies rejected; see "
          f"{provenance_path(out)})", file=sys.stderr)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from kanva.data.runner import merge_runs

    path = merge_runs(args.shards, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from kanva.data.report import write_report

    paths = write_report(args.dir, baseline=args.baseline, coco_dir=args.coco, split=args.split)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0
