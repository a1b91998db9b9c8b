"""Kanva's knowledge base of the 80 COCO categories (see kb.py and docs/world.md).

    from kanva.knowledge import load_kb
    kb = load_kb()
    kb.is_a("giraffe", "ruminant")   # True
"""

from kanva.knowledge.kb import Concept, Fact, KnowledgeBase, load_kb, validate_kb

__all__ = ["Concept", "Fact", "KnowledgeBase", "load_kb", "validate_kb"]
