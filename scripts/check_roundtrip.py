#!/usr/bin/env python3
"""Confirms transformers reloads what Ember's save_pretrained wrote, with identical outputs.

Usage:
  EMBER_ROUNDTRIP_OUT=/tmp/ember-rt cargo test -p embergrad-models --test roundtrip --test zoo_vs_transformers
  python scripts/check_roundtrip.py /tmp/ember-rt
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM
from transformers import (BertModel, Gemma3ForCausalLM, GPT2LMHeadModel, LlamaForCausalLM,
                          MistralForCausalLM, Phi3ForCausalLM, Qwen3ForCausalLM)

out = sys.argv[1]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
ids = torch.tensor([[3, 1, 4, 1], [5, 9, 2, 6]])
worst = {}
with torch.no_grad():
    for name, cls, field in [("tiny-llama", LlamaForCausalLM, "logits"),
                             ("tiny-gpt2", GPT2LMHeadModel, "logits"),
                             ("tiny-bert", BertModel, "last_hidden_state"),
                             ("tiny-gemma3", Gemma3ForCausalLM, "logits"),
                             ("tiny-qwen3", Qwen3ForCausalLM, "logits"),
                             ("tiny-mistral", MistralForCausalLM, "logits"),
                             ("tiny-phi3", Phi3ForCausalLM, "logits"),
                             ("tiny-qwen2", AutoModelForCausalLM, "logits")]:
        ref = getattr(cls.from_pretrained(os.path.join(ROOT, name)).eval()(ids), field)
        got = getattr(cls.from_pretrained(os.path.join(out, name)).eval()(ids), field)
        worst[name] = (ref - got).abs().max().item()
print("transformers reload of Ember's save_pretrained, max |diff|:", worst)
assert all(v == 0.0 for v in worst.values()), worst

# Models Ember read from its own GGUF export: the config.json written from GGUF metadata
# must describe the same model to transformers (AutoModelForCausalLM picks the class).
from_gguf = {}
with torch.no_grad():
    for name in ["tiny-gemma3", "tiny-qwen3", "tiny-mistral", "tiny-phi3", "tiny-qwen2"]:
        ref = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, name)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(os.path.join(out, f"{name}-from-gguf")).eval()(ids).logits
        from_gguf[name] = (ref - got).abs().max().item()
print("transformers load of save_pretrained after a GGUF round trip, max |diff|:", from_gguf)
assert all(v < 1e-5 for v in from_gguf.values()), from_gguf
