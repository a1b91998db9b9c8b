"""The quickstart report's figures: grouped bar charts, loss curves, and a gallery of test images with every
arm's answers (matplotlib Agg; PNGs beside report.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kanva.eval.mme import load_mme, match_mme


def bar_chart(path: Path, title: str, names: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 3.4))
    w = 0.8 / len(series)
    for k, (label, vals) in enumerate(series.items()):
        ax.bar(np.arange(len(names)) + k * w - 0.4 + w / 2, vals, w, label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss_chart(path: Path, curves: dict[str, Path]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = False
    for label, f in curves.items():
        if not f.is_file():
            continue
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if "loss" in r and "step" in r]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=label)
            drawn = True
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def gallery(q, answers: dict, labels: dict, out: Path) -> list[str]:
    from PIL import Image

    n = q.cfg.eval.gallery
    if n <= 0 or not answers or "mme" not in next(iter(answers.values())):
        return []
    data = load_mme(q.bench_data("mme")[0])
    shown = {m: {qq.uid: a.text for qq, a in zip(data.questions, match_mme(data, answers[m]["mme"])[0]) if a}
             for m in answers}
    by_image: dict[str, list] = {}
    for qq in data.questions:
        by_image.setdefault(qq.image_rel, []).append(qq)
    # Images asked about in the most subtasks first, for a varied gallery.
    order = sorted(by_image, key=lambda k: (-len({x.subtask for x in by_image[k]}), k))[:n]
    md = ["## Gallery (test images, every arm's answers)", ""]
    for rel in order:
        src = data.root / rel
        if not src.is_file():
            src = data.root / "images" / Path(rel).name
        dst = out / "gallery" / (Path(rel).stem + ".png")
        with Image.open(src) as im:
            im.convert("RGB").resize((160, 160)).save(dst)
        md += [f"![{Path(rel).name}](gallery/{dst.name})", "",
               "| subtask | question | truth | " + " | ".join(labels[m] for m in answers) + " |",
               "|---|---|---|" + "---|" * len(answers)]
        for qq in by_image[rel]:
            a = {m: shown[m].get(qq.uid, "(missing)").replace("|", "/").replace("\n", " ") for m in answers}
            md.append(f"| {qq.subtask} | {qq.question.split('?')[0]}? | {qq.gt} | " + " | ".join(a[m] for m in answers)
                      + " |")
        md.append("")
    return md
