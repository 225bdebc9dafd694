#!/usr/bin/env bash
# ember-core's op, gradient and kernel tests compiled to WebAssembly (wasm32-wasip1, SIMD128
# as in the browser build) and run under Node's WASI (scripts/wasi_run.mjs): the PyTorch
# fixtures replayed, and the SIMD128 kernels (the quantized product) against the composed
# reference; then again with EMBER_SIMD=baseline for the portable kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip1' \
    || rustup target add wasm32-wasip1
# --single-threaded-gc: Node 20's V8 crashes in its concurrent marker on these large wasm
# memories (SIGSEGV at exit, or a fatal error when memory grows), deterministically for some
# binaries; with one GC thread it does not.
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --single-threaded-gc $PWD/scripts/wasi_run.mjs"
tests=(--test ops_vs_pytorch --test grads_vs_pytorch --test kernels --test kernels_products --test kernels_bf16 --test quant)
for level in default baseline; do
    echo "== ember-core on wasm32 (Node's WASI), EMBER_SIMD=$level"
    if [ "$level" = default ]; then
        cargo test -q -p embergrad-core --target wasm32-wasip1 "${tests[@]}" -- --test-threads=1
    else
        EMBER_SIMD=$level cargo test -q -p embergrad-core --target wasm32-wasip1 "${tests[@]}" -- --test-threads=1
    fi
done
