#!/usr/bin/env python3
"""Loads an adapter Ember wrote with peft and compares peft's logits with Ember's.

Usage: python scripts/check_peft_adapter.py BASE_DIR ADAPTER_DIR EMBER_OUT.safetensors
(EMBER_OUT holds "ids" and Ember's "logits"; crates/ember-models/tests/lora_vs_peft.rs writes
it and runs this script when the venv of scripts/setup_venv.sh exists.)
Exits non-zero unless max |peft - ember| < 1e-5.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

base_dir, adapter_dir, out = sys.argv[1:4]
ember = load_file(out)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir).eval()
with torch.no_grad():
    logits = model(ember["ids"]).logits
diff = (logits - ember["logits"]).abs().max().item()
print(f"peft on Ember's adapter: max |peft - ember| = {diff:.3e}")
sys.exit(0 if diff < 1e-5 else 1)
