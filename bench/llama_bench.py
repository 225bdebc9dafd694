#!/usr/bin/env python3
"""llama.cpp's side of ember-bench's quantized rows (llama-cpp-python, built from source for
this CPU by scripts/setup_llama_cpp.sh): the same GGUF file, the same 128 prompt ids, the same
thread count. Prints one JSON line as the Ember worker does.

Usage: python bench/llama_bench.py MODEL.gguf --phase prefill|decode --repeats 5 --threads 2
"""
import argparse
import json
import time

import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--phase", choices=["prefill", "decode"], required=True)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

llm = Llama(
    model_path=args.model,
    n_ctx=512,
    n_batch=512,
    n_threads=args.threads,
    n_threads_batch=args.threads,
    verbose=False,
)
vocab = llm.n_vocab()


def last_logits():
    """The last token's logits (llama.cpp computes only those without logits_all)."""
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))


# The prompt of bench/src/quant.rs: 128 ids spread over the vocabulary.
prompt = [(i * 7919 + 11) % vocab for i in range(128)]

runs, per_token = [], []
for i in range(args.repeats + 1):
    llm.reset()
    t = time.perf_counter()
    llm.eval(prompt)
    if args.phase == "decode":
        nxt = int(np.argmax(last_logits()))
        t = time.perf_counter()
        for _ in range(64):
            llm.eval([nxt])
            nxt = int(np.argmax(last_logits()))
        count = 64
    else:
        count = 128
    dt = time.perf_counter() - t
    if i >= 1:
        runs.append(count / dt)
        per_token.append(dt * 1e3 / count)
print(json.dumps({
    "value": float(np.median(runs)), "unit": "tokens/s", "runs": runs,
    "phases": {"per token": float(np.median(per_token))},
}))
