"""kanva.infer: batched generation (`Generator`) and `kanva chat`.

    from kanva.infer import Generator
    gen = Generator.load("runs/tiny")
    gen.generate([([image], [{"role": "user", "content": "What is this?"}])], max_new_tokens=32)

Importing the package is cheap; torch loads on first use of `Generator` (PEP 562 module `__getattr__`).
"""

from __future__ import annotations

import importlib

__all__ = ["Generator", "cut_at_stop"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("kanva.infer.generate"), name)
    raise AttributeError(f"module 'kanva.infer' has no attribute {name!r}")
