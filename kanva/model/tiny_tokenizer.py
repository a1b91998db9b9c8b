"""A small byte-level BPE tokenizer, trained offline on an embedded corpus, for the `tiny` preset.

Real tokenizers have 30k-150k entries; the tiny preset's LM would spend almost all its parameters on
embeddings. Training our own ~768-entry BPE keeps the tiny model in the kilobytes while exercising the
same code paths as a real tokenizer: byte-level (any text round-trips, no <unk>), special tokens, a chat
template. The corpus is generated from fixed word lists, so training is deterministic and needs no download.
"""

from __future__ import annotations

import itertools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<|im_end|>"  # ChatML markers; EOS ends every turn

_OBJECTS = (
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign "
    "parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella "
    "handbag tie suitcase frisbee skis snowboard sports ball kite baseball bat glove skateboard "
    "surfboard tennis racket bottle wine glass cup fork knife spoon bowl banana apple sandwich orange "
    "broccoli carrot hot dog pizza donut cake chair couch potted plant bed dining table toilet tv "
    "laptop mouse remote keyboard cell phone microwave oven toaster sink refrigerator book clock vase "
    "scissors teddy bear hair drier toothbrush"
).split()
_COLORS = "red green blue yellow white black brown gray orange purple pink".split()
_PLACES = "kitchen street park beach office bedroom farm table road field room garden".split()
_RELATIONS = "on under near behind beside above below next to in front of".split(" ")
_QUESTIONS = (
    "What is in the image?", "What color is the {o}?", "How many {o}s are there?", "Where is the {o}?",
    "Is there a {o} in the picture?", "Describe the image.", "Which object is {r} the {o}?",
    "What is the {o} used for?", "Is the {o} a kind of animal?", "What can you see?",
)
_ANSWERS = (
    "The image shows a {c} {o} {r} the {p}.", "There are {n} {o}s.", "Yes, there is a {c} {o}.",
    "No, I do not see a {o}.", "The {o} is {c}.", "A {o} is {r} a {o2} in the {p}.",
    "It is used in the {p}.", "The scene is a {p} with a {o} and a {o2}.",
)
_NUMBERS = "one two three four five six 0 1 2 3 4 5 6 7 8 9 10 12 20".split()


def corpus() -> list[str]:
    """A few thousand deterministic sentences over the COCO names, colours, places and relations."""
    lines = []
    for i, (o, c, p) in enumerate(itertools.product(_OBJECTS, _COLORS, _PLACES)):
        if i % 7:  # a deterministic subsample keeps training under a second
            continue
        o2 = _OBJECTS[(i * 31) % len(_OBJECTS)]
        r = _RELATIONS[i % len(_RELATIONS)]
        n = _NUMBERS[i % len(_NUMBERS)]
        q = _QUESTIONS[i % len(_QUESTIONS)].format(o=o, r=r)
        a = _ANSWERS[i % len(_ANSWERS)].format(o=o, o2=o2, c=c, p=p, r=r, n=n)
        lines.append(f"{q}\n{a}")
    return lines


def train_tiny_tokenizer(vocab_size: int = 768) -> Tokenizer:
    """Train the byte-level BPE on `corpus()`; same vocab_size -> same tokenizer.json bytes."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is ever unknown
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def tiny_tokenizer(vocab_size: int = 768):
    """The trained BPE wrapped as a transformers fast tokenizer with pad/eos set (chat template set by the builder)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=train_tiny_tokenizer(vocab_size), pad_token=PAD, eos_token=EOS, bos_token=None
    )
