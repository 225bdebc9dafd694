#!/usr/bin/env python3
"""Confirms transformers reloads what Ember's save_pretrained wrote, with identical outputs.

Usage:
  EMBER_ROUNDTRIP_OUT=/tmp/ember-rt cargo test -p ember-models --test roundtrip
  python scripts/check_roundtrip.py /tmp/ember-rt
"""
import os
import sys

import torch
from transformers import BertModel, GPT2LMHeadModel, LlamaForCausalLM

out = sys.argv[1]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
ids = torch.tensor([[3, 1, 4, 1], [5, 9, 2, 6]])
worst = {}
with torch.no_grad():
    for name, cls, field in [("tiny-llama", LlamaForCausalLM, "logits"),
                             ("tiny-gpt2", GPT2LMHeadModel, "logits"),
                             ("tiny-bert", BertModel, "last_hidden_state")]:
        ref = getattr(cls.from_pretrained(os.path.join(ROOT, name)).eval()(ids), field)
        got = getattr(cls.from_pretrained(os.path.join(out, name)).eval()(ids), field)
        worst[name] = (ref - got).abs().max().item()
print("transformers reload of Ember's save_pretrained, max |diff|:", worst)
assert all(v == 0.0 for v in worst.values()), worst
