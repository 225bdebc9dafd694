#!/usr/bin/env bash
# The browser benchmark, everything in one command: Ember's MiniLM (wasm) against
# onnxruntime-web on the same token ids, in headless Chromium. See bench/web/README.md.
#
#   bash bench/web/run.sh              # ROUNDS=2 REPEATS=3 WARMUP=1 BATCH=8 are read by run.mjs
#
# 1. web/dist (the page's build) if it is missing: bash web/build.sh (a release wasm build).
# 2. The venv's exporter packages (onnx, onnxscript, onnxruntime) if missing, then the ONNX
#    export and speeches.json into $EMBER_CACHE/web-bench if missing (export_minilm_onnx.py);
#    the tokenizer's native time, every run.
# 3. npm ci: onnxruntime-web (bench/web/package-lock.json) and playwright-core (web/).
# 4. web/dist/bench/: this folder's page, links to the model and speeches, onnxruntime-web's
#    wasm build (ort.wasm.min.mjs and its ort-wasm-simd-threaded.{mjs,wasm}).
# 5. node bench/web/run.mjs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cache="${EMBER_CACHE:-$HOME/.cache/ember}"
out="$cache/web-bench"
python="${EMBER_PYTHON:-${EMBER_VENV:-$cache/venv}/bin/python}"
dist="${EMBER_WEB_DIST:-web/dist}"

# 1. The page's build.
if [ ! -f "$dist/pkg/ember_web.js" ] || [ ! -e "$dist/assets/minilm/model.safetensors" ]; then
    echo "== $dist is missing or incomplete: bash web/build.sh"
    bash web/build.sh
fi

# 2. The ONNX model and the token ids.
[ -x "$python" ] || bash scripts/setup_venv.sh
if ! "$python" -c "import onnx, onnxscript, onnxruntime" 2>/dev/null; then
    echo "== installing the ONNX exporter's packages into $("$python" -c 'import sys; print(sys.prefix)')"
    "$python" -m pip install -q "onnx==1.23.2" "onnxscript==0.7.2" "onnxruntime==1.32.0"
fi
if [ ! -f "$out/minilm.onnx" ] || [ ! -f "$out/speeches.json" ]; then
    echo "== exporting MiniLM to ONNX into $out"
    "$python" "$here/export_minilm_onnx.py" --out "$out"
fi
"$python" "$here/export_minilm_onnx.py" --out "$out" --time-tokenizer

# 3. The JavaScript packages, exactly as locked.
if [ ! -d "$here/node_modules/onnxruntime-web" ]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi
if [ ! -d web/node_modules/playwright-core ]; then
    (cd web && npm ci --no-audit --no-fund)
fi
command -v /usr/bin/chromium >/dev/null || [ -n "${CHROMIUM:-}" ] || {
    echo "== installing Debian's chromium"
    apt-get update -qq && apt-get install -y -qq chromium
}

# 4. The page, served from web/dist/bench (web/dist is git-ignored and rebuilt by web/build.sh).
bench="$dist/bench"
rm -rf "$bench"
mkdir -p "$bench/ort"
cp "$here/bench.html" "$here/bench.js" "$bench/"
ln -s "$out/minilm.onnx" "$bench/minilm.onnx"
ln -s "$out/speeches.json" "$bench/speeches.json"
ort="$here/node_modules/onnxruntime-web/dist"
cp "$ort/ort.wasm.min.mjs" "$ort/ort-wasm-simd-threaded.mjs" "$ort/ort-wasm-simd-threaded.wasm" "$bench/ort/"

# 5. The benchmark.
echo "== $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores; load: $(uptime | sed 's/.*load average: //')"
node "$here/run.mjs"
