#!/usr/bin/env python3
"""Tiny random-init Gemma 3, Qwen3, Mistral, Phi-3 and Qwen2 models and transformers' outputs, for
ember-models' zoo parity tests (tests/zoo_vs_transformers.rs).

Usage: python scripts/make_zoo_fixtures.py   (needs torch, transformers, safetensors)

Writes tests/fixtures/models/tiny-<arch>/ (save_pretrained) and tiny-<arch>_ref.safetensors:
ids (2, 12), labels (one -100), logits, loss (HF's shifted loss), grad.<name> for every
parameter, prompt (1, 5) and greedy (prompt + 8 tokens, generated with the KV cache).
Sliding windows of 4-5 positions are shorter than the sequences, so they matter.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM,
                          Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)

MODELS = {
    "tiny-gemma3": (Gemma3ForCausalLM, Gemma3TextConfig(
        **COMMON, num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=12, sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
        final_logit_softcapping=30.0, tie_word_embeddings=True)),
    "tiny-qwen3": (Qwen3ForCausalLM, Qwen3Config(
        **COMMON, num_hidden_layers=2, head_dim=16, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})),
    "tiny-mistral": (MistralForCausalLM, MistralConfig(
        **COMMON, num_hidden_layers=2, head_dim=8, sliding_window=4, tie_word_embeddings=False)),
    "tiny-phi3": (Phi3ForCausalLM, Phi3Config(
        **COMMON, num_hidden_layers=2, sliding_window=5, tie_word_embeddings=False)),
    "tiny-qwen2": (Qwen2ForCausalLM, Qwen2Config(
        **COMMON, num_hidden_layers=2, tie_word_embeddings=True, use_sliding_window=False)),
}

for seed, (name, (cls, cfg)) in enumerate(MODELS.items()):
    torch.manual_seed(10 + seed)
    model = cls(cfg).eval()
    with torch.no_grad():  # random norms too (Gemma initializes its `1 + w` weights to zero)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(os.path.join(ROOT, name), safe_serialization=True)
    ids = torch.randint(3, 64, (2, 12))
    labels = ids.clone()
    labels[1, 5] = -100
    out = model(ids, labels=labels)
    out.loss.backward()
    ref = {"ids": ids, "labels": labels, "logits": out.logits.detach().contiguous(),
           "loss": out.loss.detach().reshape(1)}
    for pname, p in model.named_parameters():
        ref[f"grad.{pname}"] = p.grad.detach().clone().contiguous()
    with torch.no_grad():
        prompt = ids[:1, :5].clone()
        ref["prompt"] = prompt
        ref["greedy"] = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True,
                                       eos_token_id=None, pad_token_id=0).contiguous()
    save_file(ref, os.path.join(ROOT, f"{name}_ref.safetensors"))
    print(name, ref["greedy"].tolist(), "loss", out.loss.item())
