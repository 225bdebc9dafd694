#!/usr/bin/env python3
"""Compares two builds of ember-bench workload by workload, Ember side only.

    python3 scripts/bench_compare.py BEFORE_BIN AFTER_BIN [--only a,b] [--repeats 5] [--rounds 2]

Each workload runs in worker mode (`ember-bench --worker NAME`, its own process, 2 threads)
in the order before, after, after, before for every round (so a drift of the machine's load
hits both sides alike), and the table gives each side's median over its runs (each run
itself a median of `--repeats` timed steps) and after / before (before / after for times in
ms, so above 1 is faster either way). Build the two binaries from the two commits with
`cargo build --release -p ember-bench` and copy them aside first.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKLOADS = [
    "gemm512", "gemm1024", "gemm2048", "gemm2048-bf16",
    "nanogpt", "nanogpt-bf16", "nanogpt-1024",
    "gpt2-prefill", "gpt2-prefill-bf16", "gpt2-decode", "gpt2-decode-bf16",
    "gpt2-train", "gpt2-train-bf16", "gpt2-train-1024", "gpt2-decode-q8_0",
    "smollm2-q4_1-prefill", "smollm2-q4_1-decode", "smollm2-q8_0-prefill", "smollm2-q8_0-decode",
    "load-gpt2", "load-minilm", "load-smollm2",
    "ft-smollm2-full", "ft-smollm2-lora", "ft-gpt2-512", "ft-gpt2-512-ckpt",
]


def run(binary, name, repeats, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [binary, "--worker", name, "--repeats", str(repeats), "--device", "cpu"],
        env=env, capture_output=True, text=True,
    )
    if out.returncode != 0:
        print(f"{binary} --worker {name} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None, ""
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["value"], doc["unit"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    print("| workload | unit | before | after | speed after / before |")
    print("|---|---|---|---|---|")
    for name in args.only.split(","):
        values = {"before": [], "after": []}
        unit = ""
        for _ in range(args.rounds):
            for side in ("before", "after", "after", "before"):
                v, u = run(getattr(args, side), name, args.repeats, args.threads)
                if v is not None:
                    values[side].append(v)
                    unit = u
        if not values["before"] or not values["after"]:
            print(f"| {name} | | failed | failed | |", flush=True)
            continue
        b, a = statistics.median(values["before"]), statistics.median(values["after"])
        ratio = b / a if unit == "ms" else a / b
        rows.append((name, ratio))
        spread = lambda xs: f"{statistics.median(xs):,.1f} ({min(xs):,.1f}–{max(xs):,.1f})"
        print(f"| {name} | {unit} | {spread(values['before'])} | {spread(values['after'])} | {ratio:.3f} |", flush=True)
    slow = [(n, r) for n, r in rows if r < 0.95]
    print()
    if slow:
        print("more than 5% slower: " + ", ".join(f"{n} ({r:.3f})" for n, r in slow))
    else:
        print("every workload within 5% or faster")


if __name__ == "__main__":
    main()
