#!/usr/bin/env bash
# Builds llama.cpp from source through the PyPI package `llama-cpp-python` into its own venv
# outside the checkout (default $HOME/.cache/ember/llama-venv; about 10 minutes on 2 cores,
# once: a venv that already imports llama_cpp is kept). Used by the GGUF interop tests
# (`EMBER_LLAMA_PYTHON`) and by ember-bench's llama.cpp column.
#   bash scripts/setup_llama_cpp.sh && export EMBER_LLAMA_PYTHON=$HOME/.cache/ember/llama-venv/bin/python
set -euo pipefail
venv="${EMBER_LLAMA_VENV:-$HOME/.cache/ember/llama-venv}"
version="${EMBER_LLAMA_CPP_VERSION:-0.3.36}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "llama-cpp-python ready: $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# GGML_NATIVE builds for this CPU (AVX-512, VNNI where it has them), as a user building it would.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv/bin/pip" install -q --no-cache-dir "llama-cpp-python==$version"
"$venv/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
echo "llama-cpp-python ready: $venv"
