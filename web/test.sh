#!/usr/bin/env bash
# The browser tests (issue 30), run by .ci/run: builds the page (web/build.sh), computes the
# native reference numbers with the same Rust code (and checks its trainer against
# train_gpt's own log of the same run), then drives the page in headless Chromium
# (web/tests/e2e.mjs): search, 50 training steps, a chat answer, a screenshot.
#
# Installs what it needs when missing: Debian's chromium (as root) and npm's playwright-core
# (web/package-lock.json; never a browser download).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "chromium is missing: install Debian's chromium package" >&2
        exit 1
    fi
fi
(cd web && npm ci --no-audit --no-fund --loglevel=error)

bash web/build.sh

echo "== native references (the page's Rust code, natively), checked against train_gpt's log"
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
# TrainOptions' defaults with 50 steps (web/src/train.rs); a mismatch shows as unequal losses.
cargo run -q -p embergrad --example train_gpt -- --text web/dist/assets/shakespeare.txt \
    --out "$run/train_gpt" --steps 50 --batch-size 8 --block 64 --n-layer 2 --n-head 4 \
    --n-embd 64 --lr 0.002 --warmup 100 --seed 1337 --sample-chars 0 > "$run/train_gpt.log"
cargo run -q -p embergrad-web --bin web-reference -- web/dist/assets web/dist/reference.json \
    --train-gpt-metrics "$run/train_gpt/metrics.jsonl"

echo "== the page in headless Chromium (web/tests/e2e.mjs)"
node web/tests/e2e.mjs
