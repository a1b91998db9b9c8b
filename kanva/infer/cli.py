"""CLI for kanva.infer: `kanva chat` (one-shot with --prompt, otherwise an interactive REPL)."""

from __future__ import annotations

import argparse
import sys

HELP = "commands: /image PATH, /video PATH (attach to your next message), /reset, /quit"


def _load_media(proc, images: list[str], videos: list[str]) -> list:
    """Images then videos, read with the model's processor (a bad file is an error naming it)."""
    from pathlib import Path

    # SampleError is a KanvaError: `kanva chat` prints it as `error: ...` and exits 2 as it is.
    return ([proc.load_image(Path(p), source="--image") for p in images]
            + [proc.load_video(Path(p), source="--video") for p in videos])


def _user_turn(text: str, media: list) -> dict:
    """A user message with each attached item in front, in their order, placed as the chat template places
    an image / video part (`<image>\n`, `<video>\n`)."""
    from kanva.model.templates import IMAGE_PLACE, VIDEO_PLACE
    from kanva.model.video import Video

    return {"role": "user", "content": "".join(VIDEO_PLACE if isinstance(m, Video) else IMAGE_PLACE for m in media)
            + text}


def _repl(gen, args: argparse.Namespace, attached: list) -> int:
    """Read a line, answer it with the whole conversation so far as context; streams the answer. Images and
    videos attach to the next message (--image/--video to the first), so a conversation can hold several."""
    from transformers import TextStreamer

    messages: list[dict] = []
    media: list = []  # every image/video of the conversation, in order of their placeholders
    print(f"kanva chat: {args.model}" + (f" ({len(attached)} attached)" if attached else "") + f"\n{HELP}",
          file=sys.stderr)
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
            messages, media, attached = [], [], []
            print("(conversation cleared)", file=sys.stderr)
            continue
        if line.startswith(("/image ", "/video ")):
            kind, path = line[1:6], line[7:].strip()
            try:
                attached += _load_media(gen.proc, [path] if kind == "image" else [], [path] if kind == "video" else [])
            except Exception as e:  # a bad path is a message in a REPL, not the end of the session
                print(f"error: {e}", file=sys.stderr)
                continue
            print(f"({kind} {path} attached to your next message)", file=sys.stderr)
            continue
        if line.startswith("/"):
            print(HELP, file=sys.stderr)
            continue
        messages.append(_user_turn(line, attached))
        media, attached = media + attached, []
        streamer = TextStreamer(gen.proc.tokenizer, skip_prompt=True, skip_special_tokens=True)
        print("kanva> ", end="", flush=True)
        answer = gen.generate([(media, messages)], max_new_tokens=args.max_new_tokens,
                              temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                              streamer=streamer)[0]
        messages.append({"role": "assistant", "content": answer})


def cmd_chat(args: argparse.Namespace) -> int:
    from kanva.infer.generate import Generator

    gen = Generator.load(args.model)
    media = _load_media(gen.proc, args.image, args.video)
    if args.prompt is None:
        return _repl(gen, args, media)
    messages = [{"role": "user", "content": args.prompt}]  # <image>/<video> in it place them; else in front
    answer = gen.generate([(media, messages)], max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_p=args.top_p, seed=args.seed)[0]
    print(answer)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="chat with a model (one-shot with --prompt, interactive without)")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="image to talk about (repeat for several; an onevision model takes any number)")
    p.add_argument("--video", action="append", default=[], metavar="PATH",
                   help="video file or folder of frames (onevision models), sampled to the model's frame count")
    p.add_argument("--prompt", help="one question: print only the answer and exit")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")
    p.set_defaults(func=cmd_chat)
