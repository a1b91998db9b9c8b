#!/usr/bin/env bash
# The GPU check (issue 28): a few minutes on one GPU, one table. Run from the repository root:
#   bash scripts/gpu_check.sh [--steps 12] [--batch 32] [--json gpu_check.json]
# What it measures and why: benchmarks/gpu_check.py. Put the table in docs/train.md#gpu-check with the machine named.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python benchmarks/gpu_check.py "$@"
