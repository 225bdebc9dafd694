#!/usr/bin/env bash
# Mixed-precision convergence check (issue 15's bar): trains `train_gpt` with its defaults in
# f32 and in bf16-mixed and fails unless the final validation losses are within 0.03.
# About 10 + 10 minutes on 2 cores (not part of CI). Extra arguments go to both runs, e.g.
#   bash scripts/check_convergence.sh --steps 600
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ember/target-ci}"
cargo build --release --example train_gpt
exe="$CARGO_TARGET_DIR/release/examples/train_gpt"
out="$(mktemp -d "${TMPDIR:-/tmp}/ember-convergence.XXXXXX")"
declare -A val
for precision in f32 bf16-mixed; do
    echo "== $precision"
    "$exe" --precision "$precision" --out "$out/$precision" --sample-chars 0 "$@" \
        | tee "$out/$precision.log" | grep -E "val loss|^done" || true
    val[$precision]=$(sed -n 's/^done:.* val loss \([0-9.]*\),.*/\1/p' "$out/$precision.log")
    if [[ -z "${val[$precision]}" ]]; then
        echo "no final validation loss in $out/$precision.log" >&2
        exit 1
    fi
done
python3 - "${val[f32]}" "${val[bf16-mixed]}" <<'PY'
import sys
f32, bf16 = map(float, sys.argv[1:])
diff = abs(bf16 - f32)
print(f"validation loss: f32 {f32:.4f}, bf16-mixed {bf16:.4f}, difference {diff:.4f} (bar: 0.03)")
sys.exit(0 if diff <= 0.03 else 1)
PY
