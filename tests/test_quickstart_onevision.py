"""`kanva quickstart --preset onevision`: the single-image -> OneVision curriculum; and the default quickstart
left as it was."""

from __future__ import annotations

import hashlib
import json

from kanva.quickstart.config import load_quickstart_config, recipes_dir
from kanva.quickstart.pipeline import Quickstart

# sha256 of the default presets' steps (name, the steps each reads, the config its fingerprint is made of), taken
# at 7f7edd3, before the OneVision curriculum existed: a change here redoes finished steps of users' runs.
STEPS_BEFORE_ONEVISION = {
    "smol": "d1c54e119aba288fa944bb0e51418c60cb56b0fd9e87c769f2f15e00e42fe22c",
    "tiny": "895d4e36cc7763ce267fb7cf083db536eb3669600719ba1d5bf6c569203132e0",
}


def test_default_quickstart_steps_and_configs_unchanged():
    for preset, digest in STEPS_BEFORE_ONEVISION.items():
        q = Quickstart(load_quickstart_config(preset), f"/quickstart-golden/{preset}")  # configs hold OUT paths
        rows = json.dumps([[s.name, s.after, s.config] for s in q.steps()], sort_keys=True, default=str)
        rows = rows.replace(str(recipes_dir()), "RECIPES")  # configs name the checkout's recipe files
        got = hashlib.sha256(rows.encode()).hexdigest()
        assert got == digest, f"{preset}: its steps or their configs changed"
