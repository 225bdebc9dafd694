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

# ---------------------------------------------------------------- GPT-2
from transformers import GPT2Config, GPT2LMHeadModel

torch.manual_seed(1)
g2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)).eval()
g2.save_pretrained(os.path.join(ROOT, "tiny-gpt2"), safe_serialization=True)
ids = torch.randint(0, 50, (2, 7))
labels = ids.clone()
labels[1, 3] = -100
out = g2(ids, labels=labels)
out.loss.backward()
ref = {"ids": ids, "labels": labels, "logits": out.logits.detach().contiguous(),
       "loss": out.loss.detach().reshape(1)}
for name, p in g2.named_parameters():
    ref[f"grad.{name}"] = p.grad.detach().clone()
with torch.no_grad():
    prompt = ids[:1, :4].clone()
    ref["prompt"] = prompt
    ref["greedy"] = g2.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True,
                                pad_token_id=0).contiguous()
save_file(ref, os.path.join(ROOT, "tiny-gpt2_ref.safetensors"))
print("tiny-gpt2:", ref["greedy"].tolist(), "loss", out.loss.item())

# ---------------------------------------------------------------- BERT
from transformers import BertConfig, BertModel

torch.manual_seed(2)
bert = BertModel(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=48, max_position_embeddings=16, type_vocab_size=2,
                            hidden_act="gelu")).eval()
bert.save_pretrained(os.path.join(ROOT, "tiny-bert"), safe_serialization=True)
ids = torch.randint(0, 40, (2, 6))
mask = torch.ones(2, 6, dtype=torch.int64)
mask[1, 4:] = 0
types = torch.zeros(2, 6, dtype=torch.int64)
types[0, 3:] = 1
with torch.no_grad():
    out = bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    plain = bert(input_ids=ids, attention_mask=mask).last_hidden_state  # as sentence-transformers
    m = mask.unsqueeze(-1).float()
    pooled = (plain * m).sum(1) / m.sum(1)
    sentence = torch.nn.functional.normalize(pooled, dim=-1)
save_file({"ids": ids, "mask": mask, "types": types,
           "hidden": out.last_hidden_state.contiguous(), "pooler": out.pooler_output.contiguous(),
           "sentence": sentence.contiguous()}, os.path.join(ROOT, "tiny-bert_ref.safetensors"))
print("tiny-bert saved")
