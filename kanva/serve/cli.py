"""CLI for kanva.serve: `kanva serve` (OpenAI-compatible API + chat page) and `kanva export` (HF checkpoint)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from kanva.errors import KanvaError
from kanva.serve.limits import Limits

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a model on the OpenAI chat API, with a chat page at /",
        description="Serve a model directory on the OpenAI chat-completions protocol (text + images, streaming), "
        "with a web chat page at /. Binds 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--model", required=True, type=Path, help="model directory (kanva model build / train output)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", help="model id clients send (default: --model as given)")
    p.add_argument("--api-key", default=os.environ.get("KANVA_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 (default: $KANVA_API_KEY; none = open)")
    p.add_argument("--allow-remote-images", action="store_true",
                   help="also accept http(s) image URLs (the server fetches them); data: URLs are always accepted")
    p.add_argument("--max-batch-size", type=int, default=16, help="requests generated together (1 = no batching)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0,
                   help="how long the oldest queued request waits for others to batch with")
    limits = p.add_argument_group("limits (a request over one gets a 4xx naming it)")
    for f in fields(Limits):
        limits.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=f"default {f.default}")
    p.add_argument("--threads", type=int, help="torch CPU threads for generation (default: torch's choice; "
                   "1 is often fastest on a machine shared with other jobs)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=serve)

    e = subparsers.add_parser(
        "export",
        help="write a plain transformers Llava / LlavaOnevision checkpoint (LoRA merged) for vLLM / transformers",
        description="Export a model directory as a plain transformers LlavaForConditionalGeneration (or, for an "
        "onevision model, LlavaOnevisionForConditionalGeneration, checked against the config fields vLLM's "
        "llava-onevision loader reads) checkpoint "
        "with its processor and chat template, merging a LoRA adapter if the directory has one. "
        "The result loads with transformers alone and serves with `vllm serve OUT`.",
    )
    e.add_argument("--model", required=True, type=Path, help="model directory (may hold a peft LoRA adapter)")
    e.add_argument("--out", required=True, type=Path, help="output directory (must be empty or absent)")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weight dtype to write (bfloat16 halves the size for GPU serving)")
    e.set_defaults(func=export)


def serve(args: argparse.Namespace) -> int:
    # Flags are checked before the heavy imports, so a typo fails in a blink.
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    if args.max_batch_size < 1 or args.batch_wait_ms < 0 or (args.threads is not None and args.threads < 1):
        raise KanvaError("--max-batch-size and --threads must be >= 1, --batch-wait-ms >= 0")
    if not (args.model / "config.json").is_file():
        raise KanvaError(f"{args.model}: not a model directory (no config.json)")
    if args.host not in LOOPBACK and not args.api_key:
        print(f"warning: serving on {args.host} with no --api-key: anyone who can reach it can use it",
              file=sys.stderr)

    import uvicorn

    from kanva.serve.app import create_app
    from kanva.serve.engine import Engine
    from kanva.serve.server import uvicorn_config
    from kanva.serve.worker import BatchWorker

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # this process is the server: its setting to make
    engine = Engine.load(args.model)
    worker = BatchWorker(engine, args.max_batch_size, args.batch_wait_ms / 1000, limits.max_pending)
    model_id = args.served_model_name or str(args.model).rstrip("/")
    app = create_app(worker, model_id, limits, api_key=args.api_key, allow_remote_images=args.allow_remote_images)
    print(f"serving {model_id!r} on http://{args.host}:{args.port} (chat page at /, API at /v1)", file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, args.host, args.port, args.log_level)).run()
    return 0


def export(args: argparse.Namespace) -> int:
    from kanva.serve.export import export_model

    out = export_model(args.model, args.out, args.dtype)
    print(f"wrote {out}  (serve it with: vllm serve {out})")
    return 0
