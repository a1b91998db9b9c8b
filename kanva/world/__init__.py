"""Kanva's world: annotated scenes of COCO categories drawn with OpenMoji glyphs, in COCO format.

    kanva world generate --out world --train 1000 --val 100 --test 200 --novel 100 --seed 0
    kanva world show world --split test --out grid.png

Python: `kanva.world.generate.generate_world(out, counts, seed, kanva.world.config.load_world_config())`.
Output layout: docs/design.md; details: docs/world.md. This file imports nothing, so `kanva --help`
(which imports `kanva.world.cli`) stays fast.
"""
