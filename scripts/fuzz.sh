#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 60) with libFuzzer and
# AddressSanitizer, from seed corpora built from the fixtures and assets (kept outside the
# checkout, so coverage accumulates from run to run). Any crash, abort, timeout (10 s) or
# use of more than 2 GB fails the run; libFuzzer writes the input to fuzz/artifacts/.
#   bash scripts/fuzz.sh 60            # CI: a minute per target
#   bash scripts/fuzz.sh 3600 --record # longer, appending executions per target to fuzz/README.md
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
record="${2:-}"
cache="${EMBER_CACHE:-$HOME/.cache/ember}"
corpus="$cache/fuzz-corpus"
assets="${EMBER_ASSETS:-$cache/assets}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly flags: the nightly toolchain where there is one, else stable with
# RUSTC_BOOTSTRAP (the sanitizer runtimes ship with both).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

# Seeds: the fixtures' chat templates (template, NUL, a message), model configs, GGUF files,
# tokenizer files.
mkdir -p "$corpus"/{chat_template,tokenizer_json,gguf_tokenizer,decoder_config,gguf,safetensors,run_dir,numpy}
python3 - "$corpus" <<'EOF'
import json, sys
corpus = sys.argv[1]
for name, t in json.load(open("tests/fixtures/chat_templates.json")).items():
    open(f"{corpus}/chat_template/{name}", "wb").write(t["source"].encode() + b"\0Hello there")
EOF
for f in tests/fixtures/models/*/config.json; do
    cp "$f" "$corpus/decoder_config/$(basename "$(dirname "$f")").json"
done
printf '{"step": 3, "precision": "f32", "rng": ["1", "2", "3", "4"], "global_rng": ["5", "6", "7", "8"], "train_curve": [[1, 2.5]], "val_curve": []}\0{"step": 3}' \
    >"$corpus/run_dir/seed"
cp tests/fixtures/tiny.gguf "$corpus/gguf/"
cp tests/fixtures/tiny.gguf "$corpus/gguf_tokenizer/"
cp tests/fixtures/nn/linear.safetensors "$corpus/safetensors/" 2>/dev/null || true
cp tests/fixtures/numpy/*.npy tests/fixtures/numpy/*.npz "$corpus/numpy/"
if [ -f "$assets/minilm/tokenizer.json" ]; then
    cp "$assets/minilm/tokenizer.json" "$corpus/tokenizer_json/minilm.json"
fi

target_dir="$cache/fuzz-target"
"${fuzz[@]}" build --target-dir "$target_dir"
for t in $("${fuzz[@]}" list); do
    log=$(mktemp)
    echo "== fuzz $t for ${seconds}s"
    set +e
    "${fuzz[@]}" run --target-dir "$target_dir" "$t" "$corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 >"$log" 2>&1
    status=$?
    set -e
    grep -E 'Done|ERROR|SUMMARY|panicked|Test unit written' "$log" || true
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -1)
    rm -f "$log"
    if [ "$status" != 0 ]; then
        echo "fuzz target $t failed (status $status): see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    echo "$t: ${runs:-0} executions in ${seconds}s"
    if [ "$record" = "--record" ]; then
        echo "| $(date -u +%Y-%m-%d) | $t | ${runs:-0} | $seconds | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) |" >>fuzz/README.md
    fi
done
