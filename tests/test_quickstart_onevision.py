"""`kanva quickstart --preset onevision`: the single-image -> OneVision curriculum; and the default quickstart
left as it was."""

from __future__ import annotations

import hashlib
import json

from kanva.quickstart.config import load_quickstart_config
from kanva.quickstart.pipeline import Quickstart

# sha256 of the default presets' steps (name, the steps each reads, the config its fingerprint is made of), taken
# before the OneVision curriculum existed: a change here redoes finished steps of users' runs.
STEPS_BEFORE_ONEVISION = {
    "smol": "fb91322603cee284a271a6284b17ed5e9c5ac0d96c0b7871ee29afd25a83fe77",
    "tiny": "d836d891f0cb505ce61b67cb4f33e0f84e8cc1bcfeedea9a4248d523b80c590e",
}


def test_default_quickstart_steps_and_configs_unchanged(tmp_path):
    for preset, digest in STEPS_BEFORE_ONEVISION.items():
        q = Quickstart(load_quickstart_config(preset), tmp_path / preset)
        rows = [[s.name, s.after, s.config] for s in q.steps()]
        got = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
        assert got == digest, f"{preset}: its steps or their configs changed"
