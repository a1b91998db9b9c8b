"""Evolution operators. Rule operators (this package) compute children from annotations and the KB; LLM
operators (`llm.py`) ask a backend. `rule_operators()` lists the rule ones in a fixed order (the draw order).
"""

from __future__ import annotations

from kanva.data.ops.base import Context, Draft, Operator


def rule_operators() -> list[Operator]:
    from kanva.data.ops.choice import Choice
    from kanva.data.ops.color import Color
    from kanva.data.ops.counting import Count
    from kanva.data.ops.existence import Exist
    from kanva.data.ops.knowledge import Knowledge
    from kanva.data.ops.multihop import MultiHop
    from kanva.data.ops.ocr import OCR
    from kanva.data.ops.premise import Premise
    from kanva.data.ops.spatial import Position, Size

    return [Count(), Exist(), Position(), Size(), Choice(), Knowledge(), MultiHop(), Premise(), OCR(), Color()]


__all__ = ["Context", "Draft", "Operator", "rule_operators"]
