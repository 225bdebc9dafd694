#!/usr/bin/env bash
# Runs Ember's whole test suite on every backend: CPU (burn-flex) and wgpu, then the Python
# package's tests (scripts/test_python.sh: a release build through pip), data parallel on
# MPI (scripts/test_distributed.sh; installs OpenMPI when missing), then the browser
# page's: ember-core's tests on wasm32 under Node (scripts/test_wasm.sh), and the page in
# headless Chromium (web/test.sh; it needs the assets). Without a GPU the
# wgpu tests run on Mesa's lavapipe (software Vulkan), which this script installs if missing.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing mesa-vulkan-drivers (lavapipe) for the wgpu tests"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null
    else
        echo "no Vulkan driver found: install mesa-vulkan-drivers (or a GPU driver)," >&2
        echo "or run with EMBER_ALLOW_NO_WGPU=1 to skip the wgpu tests loudly" >&2
        exit 1
    fi
fi
# Mesa warns without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo test --workspace --features embergrad/wgpu "$@"

echo "== the Python package (scripts/test_python.sh)"
bash scripts/test_python.sh

echo "== data parallel on MPI, 2 and 3 ranks on loopback (scripts/test_distributed.sh)"
bash scripts/test_distributed.sh

echo "== ember-core's fixtures and kernels on WebAssembly (scripts/test_wasm.sh)"
bash scripts/test_wasm.sh

echo "== the browser page (web/test.sh)"
if [ -e "${EMBER_ASSETS:-$HOME/.cache/ember/assets}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ] \
    || [ "${EMBER_REQUIRE_ASSETS:-0}" = 1 ]; then
    bash web/test.sh
else
    echo "SKIPPED: the browser tests need the real assets: run bash scripts/fetch_assets.sh" >&2
fi
