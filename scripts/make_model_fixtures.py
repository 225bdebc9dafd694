#!/usr/bin/env python3
"""Tiny random-init Hugging Face models and transformers' outputs, for ember-models' parity
tests.

Usage: python scripts/make_model_fixtures.py   (needs torch, transformers, safetensors)

Writes tests/fixtures/models/<name>/ (config.json + model.safetensors via save_pretrained) and
tests/fixtures/models/<name>_ref.safetensors (input ids, logits, greedy continuation).
"""
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
os.makedirs(ROOT, exist_ok=True)

cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
model = LlamaForCausalLM(cfg).eval()
model.save_pretrained(os.path.join(ROOT, "tiny-llama"), safe_serialization=True)

ids = torch.randint(3, 64, (2, 7))
with torch.no_grad():
    logits = model(ids).logits
    prompt = ids[:1, :5]
    gen = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True,
                         eos_token_id=None, pad_token_id=0)
save_file({"ids": ids, "logits": logits.contiguous(), "prompt": prompt.clone(),
           "greedy": gen.contiguous()}, os.path.join(ROOT, "tiny-llama_ref.safetensors"))
print("tiny-llama:", gen.tolist())
