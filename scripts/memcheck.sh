#!/usr/bin/env bash
# Runs ember-core's kernel tests under AddressSanitizer, at every SIMD level: the f32, bf16
# and int8 products (gemm/), the attention tiles, the fused passes and the quantized formats,
# and, with EMBER_SIMD=amx-emulated, the AMX products on the tile emulator;
# each through its unsafe code (out-of-bounds reads and writes, use after free, double free
# are errors). The build is its own (nightly flags; about 10 minutes on a new machine, cached in
# ~/.cache/ember/asan-target after). Valgrind's memcheck cannot run the AVX-512 kernels.
#   bash scripts/memcheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
target="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${EMBER_CACHE:-$HOME/.cache/ember}/asan-target"
export RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
tests=(--lib --test kernels --test kernels_products --test kernels_bf16 --test quant)
"${cargo[@]}" test -p embergrad-core --target "$target" "${tests[@]}" --no-run
for level in avx512 avx2 baseline amx-emulated; do
    echo "== kernel tests under AddressSanitizer, EMBER_SIMD=$level"
    EMBER_SIMD="$level" "${cargo[@]}" test -p embergrad-core --target "$target" "${tests[@]}" -q
done
