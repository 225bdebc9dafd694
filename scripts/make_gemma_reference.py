#!/usr/bin/env python3
"""Reference outputs of Gemma 3 270M (the Q4_K_M GGUF of scripts/fetch_assets.sh) computed by
transformers, which reads the GGUF itself and dequantizes it to f32.

Usage: python scripts/make_gemma_reference.py   (needs torch, transformers, gguf, accelerate)

Writes tests/fixtures/gemma3_270m_ref.json:
  tokenizer: strings and the ids transformers' tokenizer (built from the GGUF metadata) gives
  prompt/greedy: a factual prompt's ids and the greedy continuation (16 tokens)
  top: the 5 largest logits (ids, values) at each prompt position
  text/perplexity: a fixed paragraph and its perplexity (exp of the mean shifted loss)
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ASSETS = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
DIR, FILE = os.path.join(ASSETS, "gemma3"), "gemma-3-270m-q4_k_m.gguf"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "gemma3_270m_ref.json")

STRINGS = [
    "Hello world",
    "The capital of France is",
    "  two leading spaces and   three inside",
    "digits 1234567890 and 3.14159",
    "café naïve façade Straße",
    "日本語のテキスト、中文文本。",
    "emoji 🙂🚀 and symbols © ± ∑",
    "tabs\tand\nnew lines\n\n",
    "<start_of_turn>user\nhi<end_of_turn>",
    "x" * 40,
]
PROMPT = "The capital of France is the city of"
TEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
        "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
        "from 1887 to 1889. Locally nicknamed the Iron Lady, it was constructed as the centrepiece "
        "of the 1889 World's Fair, and to crown the centennial anniversary of the French Revolution.")

tok = AutoTokenizer.from_pretrained(DIR, gguf_file=FILE)
model = AutoModelForCausalLM.from_pretrained(DIR, gguf_file=FILE, dtype=torch.float32).eval()
ref = {"tokenizer": [{"text": s, "ids": tok(s).input_ids} for s in STRINGS]}
with torch.no_grad():
    ids = tok(PROMPT, return_tensors="pt").input_ids
    logits = model(ids).logits[0]
    top = logits.topk(5, dim=-1)
    gen = model.generate(ids, max_new_tokens=16, do_sample=False)
    ref["prompt"] = ids[0].tolist()
    ref["greedy"] = gen[0, ids.shape[1]:].tolist()
    ref["greedy_text"] = tok.decode(gen[0, ids.shape[1]:])
    ref["top_ids"] = top.indices.tolist()
    ref["top_logits"] = top.values.tolist()
    t = tok(TEXT, return_tensors="pt").input_ids
    loss = model(t, labels=t).loss
    ref["text"] = TEXT
    ref["text_ids"] = t[0].tolist()
    ref["perplexity"] = float(torch.exp(loss))
with open(OUT, "w") as f:
    json.dump(ref, f, indent=1, ensure_ascii=False)
print("greedy:", repr(ref["greedy_text"]), "perplexity", ref["perplexity"])
