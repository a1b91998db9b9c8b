"""Versioned prompt files (`kanva/data/prompts/NAME.vN.txt`) and their hashes for provenance.

A file has a `[system]` and a `[user]` section; `$name` fields are filled with `string.Template` (so JSON-like
braces in a prompt need no escaping). A prompt is never edited in place: a change is a new version file, and
every candidate records the name, version and content hash of the prompt that made it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

from kanva.errors import KanvaError

PROMPT_DIR = Path(__file__).parent / "prompts"
_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.txt$")


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: str
    user: str
    hash: str  # sha256 of the file bytes, first 16 hex digits

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def messages(self, **fields: object) -> tuple[tuple[str, str], ...]:
        try:
            user = Template(self.user).substitute({k: str(v) for k, v in fields.items()})
        except KeyError as e:
            raise KanvaError(f"prompt {self.id}: no value for field ${e.args[0]}") from None
        return (("system", self.system), ("user", user))

    def static_text(self) -> str:
        """The prompt's own words (fields removed): what an echoing model would repeat."""
        return re.sub(r"\$\w+", " ", f"{self.system}\n{self.user}")


def _parse(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    m = re.match(r"\s*\[system\]\n(?P<system>.*?)\n\[user\]\n(?P<user>.*)\Z", text, re.S)
    if not m:
        raise KanvaError(f"{path}: a prompt file needs a [system] section, then a [user] section")
    return m.group("system").strip(), m.group("user").strip()


@lru_cache(maxsize=None)
def load_prompt(name: str, version: int | None = None) -> Prompt:
    """The prompt `name` at `version` (default: the highest version shipped)."""
    found = {}
    for p in PROMPT_DIR.glob(f"{name}.v*.txt"):
        m = _FILE.match(p.name)
        if m and m.group("name") == name:
            found[int(m.group("version"))] = p
    if not found:
        raise KanvaError(f"no prompt file {name}.v*.txt in {PROMPT_DIR}")
    v = max(found) if version is None else version
    if v not in found:
        raise KanvaError(f"prompt {name} has no version {v} (have {sorted(found)})")
    path = found[v]
    system, user = _parse(path)
    return Prompt(name, v, system, user, hashlib.sha256(path.read_bytes()).hexdigest()[:16])


def prompt_hashes() -> dict[str, str]:
    """id -> hash for every shipped prompt (recorded in run.json)."""
    out = {}
    for p in sorted(PROMPT_DIR.glob("*.txt")):
        m = _FILE.match(p.name)
        if m:
            pr = load_prompt(m.group("name"), int(m.group("version")))
            out[pr.id] = pr.hash
    return out


def parse_fields(text: str, names: tuple[str, ...]) -> dict[str, str] | None:
    """Read `Name: value` fields (case-insensitive; a value may run over several lines) from a reply.

    Returns None unless every one of `names` is present and non-empty. A repeated field keeps its first value;
    lines before the first field (a preamble) are ignored.
    """
    pattern = re.compile(r"^\s*(?:\*\*)?(" + "|".join(re.escape(n) for n in names) + r")(?:\*\*)?\s*:(?:\*\*)?\s*(.*)$",
                         re.I)
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            key = next(n for n in names if n.lower() == m.group(1).lower())
            current = key if key not in out else None
            if current:
                out[current] = [m.group(2).strip()]
        elif current is not None and line.strip():
            out[current].append(line.strip())
    values = {k: " ".join(v).strip() for k, v in out.items()}
    if any(not values.get(n) for n in names):
        return None
    return values
