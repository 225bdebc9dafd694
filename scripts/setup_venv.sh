#!/usr/bin/env bash
# Creates the Python venv that regenerates reference fixtures and runs the reference checks
# (peft loading Ember's adapters):
#   bash scripts/setup_venv.sh && "$EMBER_VENV/bin/python" scripts/make_fixtures.py
# The venv lives outside the checkout (default $HOME/.cache/ember/venv, about 3 GB with torch);
# a venv that already has every package is left as it is (CI calls this on every run).
set -euo pipefail
venv="${EMBER_VENV:-$HOME/.cache/ember/venv}"
packages=(torch safetensors numpy transformers gguf accelerate peft)
if "$venv/bin/python" -c "import torch, safetensors, numpy, transformers, gguf, accelerate, peft" \
    2>/dev/null; then
    echo "venv ready: $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q "${packages[@]}"
echo "venv ready: $venv"
