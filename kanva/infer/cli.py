"""CLI for kanva.infer: `kanva chat` (one-shot with --prompt, otherwise an interactive REPL)."""

from __future__ import annotations

import argparse
import sys

HELP = "commands: /image PATH (new image, starts a new conversation), /reset, /quit"


def _load_image(proc, path: str):
    from pathlib import Path

    return proc.load_image(Path(path), source="--image")


def _repl(gen, args: argparse.Namespace, image) -> int:
    """Read a line, answer it with the whole conversation so far as context; streams the answer."""
    from transformers import TextStreamer

    messages: list[dict] = []
    print(f"kanva chat: {args.model}" + (f" (image {args.image})" if image else "") + f"\n{HELP}", file=sys.stderr)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print(file=sys.stderr)
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/reset":
            messages = []
            print("(conversation cleared)", file=sys.stderr)
            continue
        if line.startswith("/image"):
            path = line[len("/image"):].strip()
            try:
                image = _load_image(gen.proc, path) if path else None
            except Exception as e:  # a bad path is a message in a REPL, not the end of the session
                print(f"error: {e}", file=sys.stderr)
                continue
            messages = []  # the image belongs to the first user turn: a new image starts a new conversation
            print(f"(image {path or 'removed'}; conversation cleared)", file=sys.stderr)
            continue
        if line.startswith("/"):
            print(HELP, file=sys.stderr)
            continue
        messages.append({"role": "user", "content": line})
        streamer = TextStreamer(gen.proc.tokenizer, skip_prompt=True, skip_special_tokens=True)
        print("kanva> ", end="", flush=True)
        answer = gen.generate([([image] if image else [], messages)], max_new_tokens=args.max_new_tokens,
                              temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                              streamer=streamer)[0]
        messages.append({"role": "assistant", "content": answer})


def cmd_chat(args: argparse.Namespace) -> int:
    from kanva.infer.generate import Generator

    gen = Generator.load(args.model)
    image = _load_image(gen.proc, args.image) if args.image else None
    if args.prompt is None:
        return _repl(gen, args, image)
    messages = [{"role": "user", "content": args.prompt}]
    answer = gen.generate([([image] if image else [], messages)], max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_p=args.top_p, seed=args.seed)[0]
    print(answer)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="chat with a model (one-shot with --prompt, interactive without)")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--image", help="image file to talk about")
    p.add_argument("--prompt", help="one question: print only the answer and exit")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.set_defaults(func=cmd_chat)
