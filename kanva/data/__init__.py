"""kanva.data: the LLaVA-format data contract (`kanva.data.llava`) and knowledge-aware instruction evolution.

Submodules are imported where used; `kanva.data.llava` needs neither torch nor transformers.
"""
