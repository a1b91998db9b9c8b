"""`kanva quickstart --preset onevision`: the single-image -> OneVision curriculum; and the default quickstart
left as it was."""

from __future__ import annotations

import hashlib
import json

from kanva.quickstart.config import load_quickstart_config
from kanva.quickstart.pipeline import Quickstart

# sha256 of the default presets' steps (name, the steps each reads, the config its fingerprint is made of), taken
# at 7f7edd3, before the OneVision curriculum existed: a change here redoes finished steps of users' runs.
STEPS_BEFORE_ONEVISION = {
    "smol": "93bff6e20de027d42a1e00e7b2493ae09b8ae5eb8a525b4874e7e10d679b0df6",
    "tiny": "895d4e36cc7763ce267fb7cf083db536eb3669600719ba1d5bf6c569203132e0",
}


def test_default_quickstart_steps_and_configs_unchanged():
    for preset, digest in STEPS_BEFORE_ONEVISION.items():
        q = Quickstart(load_quickstart_config(preset), f"/quickstart-golden/{preset}")  # configs hold OUT paths
        rows = [[s.name, s.after, s.config] for s in q.steps()]
        got = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
        assert got == digest, f"{preset}: its steps or their configs changed"
