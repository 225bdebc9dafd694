#!/usr/bin/env python3
"""LoRA adapters made by peft on the tiny Llama and GPT-2 fixtures, and peft's outputs, for
Ember's peft compatibility tests (crates/ember-models/tests/lora_vs_peft.rs).

Usage: python scripts/make_lora_fixtures.py   (needs torch, transformers, peft, safetensors)

Writes tests/fixtures/lora/<name>/ (peft's save_pretrained: adapter_config.json,
adapter_model.safetensors) and tests/fixtures/lora/<name>_ref.safetensors: ids, labels,
logits (eval), loss and grad.<module>.lora_A/B.weight (train mode, HF's shifted loss), and
merged.<param> for every weight merge_and_unload changed.
"""
import os

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
CASES = {
    # name: (base fixture, vocab, LoraConfig)
    "tiny-llama-lora": ("tiny-llama", 64, LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0,
        init_lora_weights=False, task_type="CAUSAL_LM")),
    "tiny-gpt2-lora": ("tiny-gpt2", 50, LoraConfig(
        r=4, lora_alpha=16, target_modules=["c_attn", "c_proj"], lora_dropout=0.0,
        fan_in_fan_out=True, use_rslora=True, init_lora_weights=False, task_type="CAUSAL_LM")),
}

for seed, (name, (base, vocab, cfg)) in enumerate(CASES.items()):
    torch.manual_seed(20 + seed)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", base))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg.base_model_name_or_path = base
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(os.path.join(ROOT, "lora", name))
    os.remove(os.path.join(ROOT, "lora", name, "README.md"))  # a generated model card
    ids = torch.randint(0, vocab, (2, 7))
    labels = ids.clone()
    labels[0, 2] = -100
    ref = {"ids": ids, "labels": labels}
    peft_model.eval()
    with torch.no_grad():
        ref["logits"] = peft_model(ids).logits.contiguous()
    peft_model.train()
    out = peft_model(ids, labels=labels)
    out.loss.backward()
    ref["loss"] = out.loss.detach().reshape(1)
    for pname, p in peft_model.named_parameters():
        if p.requires_grad:
            key = pname.replace("base_model.model.", "", 1).replace(".default", "")
            ref[f"grad.{key}"] = p.grad.detach().clone().contiguous()
    merged = peft_model.merge_and_unload()
    for k, v in merged.state_dict().items():
        if k in before and not torch.equal(before[k], v):
            ref[f"merged.{k}"] = v.detach().clone().contiguous()
    save_file(ref, os.path.join(ROOT, "lora", f"{name}_ref.safetensors"))
    print(name, "loss", out.loss.item(), sum(k.startswith("merged.") for k in ref), "merged weights")
