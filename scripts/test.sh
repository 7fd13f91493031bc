#!/usr/bin/env bash
# Install everything into ./.venv and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
pip install -q torch==2.13.0          # first: the CPU build; anything else pulls CUDA
pip install -q -e '.[test,dev]'
python -m pytest "$@"
