#!/usr/bin/env bash
# Builds llama.cpp from source through the PyPI package `llama-cpp-python` into its own venv
# outside the checkout (default $HOME/.cache/ember/llama-venv; about 10 minutes on 2 cores,
# once: a venv built with the same flags on a CPU with the same flags is kept). Used by the
# GGUF interop tests (`EMBER_LLAMA_PYTHON`) and by ember-bench's llama.cpp column.
#   bash scripts/setup_llama_cpp.sh && export EMBER_LLAMA_PYTHON=$HOME/.cache/ember/llama-venv/bin/python
#
# The build targets this CPU's extensions explicitly (AVX, AVX2, FMA, F16C, BMI2, AVX-512 with
# VBMI, VNNI and BF16, AVX-VNNI: what `GGML_NATIVE=ON` would pick), with `GGML_NATIVE=OFF`
# and llama.cpp's AMX path off. On Intel Xeons with AMX a native build enables that path, and
# llama-cpp-python 0.3.36 then segfaults on SmolLM2 at the first prompt (Ember's Q8_0 file and
# the shipped Q4_1 alike), so CI could not pass there; without AMX it runs everywhere. Set
# CMAKE_ARGS to build otherwise.
set -euo pipefail
venv="${EMBER_LLAMA_VENV:-$HOME/.cache/ember/llama-venv}"
version="${EMBER_LLAMA_CPP_VERSION:-0.3.36}"

flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]] && echo ON || echo OFF; }
if [ -z "${CMAKE_ARGS:-}" ]; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma)"
    CMAKE_ARGS+=" -DGGML_F16C=$(has f16c) -DGGML_BMI2=$(has bmi2) -DGGML_AVX_VNNI=$(has avx_vnni)"
    CMAKE_ARGS+=" -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VBMI=$(has avx512vbmi)"
    CMAKE_ARGS+=" -DGGML_AVX512_VNNI=$(has avx512_vnni) -DGGML_AVX512_BF16=$(has avx512_bf16)"
    CMAKE_ARGS+=" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
stamp="llama-cpp-python==$version $CMAKE_ARGS"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null &&
    [ "$(cat "$venv/ember-build" 2>/dev/null)" = "$stamp" ]; then
    echo "llama-cpp-python ready: $venv ($CMAKE_ARGS)"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
echo "building llama-cpp-python $version with $CMAKE_ARGS"
CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$venv/bin/pip" install -q --no-cache-dir "llama-cpp-python==$version"
"$venv/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
echo "$stamp" >"$venv/ember-build"
echo "llama-cpp-python ready: $venv"
