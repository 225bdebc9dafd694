#!/usr/bin/env python3
"""Token ids transformers' tokenizer gives for SmolLM2's GGUF (byte-level BPE from the file's
metadata), for Ember's `Tokenizer::from_gguf` (crates/ember-models/tests/real_weights.rs).
Gemma 3's SentencePiece ids are in gemma3_270m_ref.json (scripts/make_gemma_reference.py).

Usage: python scripts/make_tokenizer_fixtures.py   (needs transformers, gguf; the assets)
Writes tests/fixtures/smollm2_tokenizer.json: [{"text", "ids"}].
"""
import json
import os

from transformers import AutoTokenizer

ASSETS = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "smollm2_tokenizer.json")
STRINGS = [
    "Hello world",
    "  two leading spaces and   three inside",
    "digits 1234567890 and 3.14159",
    "café naïve façade Straße",
    "日本語のテキスト、中文文本。",
    "emoji 🙂🚀 and symbols © ± ∑",
    "tabs\tand\nnew lines\n\n",
    "<|im_start|>user\nhi<|im_end|>",
    "don't won't it's I'm",
]
tok = AutoTokenizer.from_pretrained(os.path.join(ASSETS, "smollm2"),
                                    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
cases = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids} for s in STRINGS]
with open(OUT, "w") as f:
    json.dump(cases, f, indent=1, ensure_ascii=False)
print(len(cases), "strings")
