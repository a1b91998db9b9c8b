"""Kanva: Knowledge-Aware laNguage-and-Vision Assistant.

The flow, one package each: world and knowledge -> data -> model -> train -> eval -> serve.
"""

__version__ = "0.1.0"
