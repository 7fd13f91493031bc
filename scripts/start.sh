#!/usr/bin/env bash
# Install into ./.venv, load the demo corpus, and start the gateway on the embedded database.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
pip install -q torch==2.13.0
pip install -q -e .
gateway demo
exec gateway serve "$@"
