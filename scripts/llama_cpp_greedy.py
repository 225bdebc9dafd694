#!/usr/bin/env python3
"""Greedy tokens from llama.cpp (llama-cpp-python) for a GGUF file: what Ember's GGUF
interop test compares against.

Usage: python scripts/llama_cpp_greedy.py MODEL.gguf --prompt 1,2,3 --tokens 16
Prints one JSON line: {"tokens": [...]}.
"""
import argparse
import json

import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--prompt", required=True, help="comma-separated token ids")
ap.add_argument("--tokens", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()

prompt = [int(t) for t in args.prompt.split(",")]
llm = Llama(
    model_path=args.model,
    n_ctx=max(256, len(prompt) + args.tokens + 8),
    n_threads=args.threads,
    n_threads_batch=args.threads,
    logits_all=True,
    verbose=False,
)
llm.eval(prompt)
out = []
for _ in range(args.tokens):
    nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    out.append(nxt)
    llm.eval([nxt])
print(json.dumps({"tokens": out}))
