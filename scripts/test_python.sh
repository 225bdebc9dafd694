#!/usr/bin/env bash
# The Python package's tests: builds and installs ./python (maturin, release) into a venv of
# its own (~/.cache/ember/py-venv, made on first use from python3 and PyPI), then runs pytest
# on python/tests (the ops fixtures of tests/fixtures replayed through the Python API, tensors,
# autograd, threads) and the quickstart example. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${EMBER_PY_VENV:-${EMBER_CACHE:-$HOME/.cache/ember}/py-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "pytest>=7" "numpy>=2.1"
echo "building the Python package (pip install ./python; cargo's release build is cached in ${CARGO_TARGET_DIR:-target})"
"$venv/bin/python" -m pip install -q ./python
"$venv/bin/python" -m pytest -q python/tests "$@"
"$venv/bin/python" python/examples/quickstart.py
