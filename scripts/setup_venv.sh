#!/usr/bin/env bash
# Creates the Python venv that regenerates PyTorch reference fixtures:
#   bash scripts/setup_venv.sh && "$EMBER_VENV/bin/python" scripts/make_fixtures.py
# The venv lives outside the checkout (default $HOME/.cache/ember/venv, about 3 GB with torch).
set -euo pipefail
venv="${EMBER_VENV:-$HOME/.cache/ember/venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch safetensors numpy transformers gguf
echo "venv ready: $venv"
