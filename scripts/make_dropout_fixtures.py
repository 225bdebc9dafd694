#!/usr/bin/env python3
"""Statistics of transformers' training-mode forward, for
crates/ember-models/tests/dropout_vs_transformers.rs.

Dropout masks come from each framework's own generator, so single forwards cannot be compared;
their distribution can. For each tiny model of tests/fixtures/models, with its dropout
probabilities set as below (config.json overrides), transformers runs N training-mode forwards
of fixed ids and records the per-element mean and standard deviation of the output (BERT's
last hidden state, the causal models' logits), and the eval-mode output.

Usage: python scripts/make_dropout_fixtures.py   (torch, transformers)
Writes tests/fixtures/dropout_stats.json.
"""
import json
import os

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
N = 4000
CASES = {
    "tiny-bert": {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.2},
    "tiny-gpt2": {"embd_pdrop": 0.1, "attn_pdrop": 0.2, "resid_pdrop": 0.15},
    "tiny-llama": {"attention_dropout": 0.3},
    "tiny-phi3": {"attention_dropout": 0.1, "resid_pdrop": 0.2},
}


def main():
    torch.manual_seed(0)
    out = {"n": N, "cases": []}
    for name, overrides in CASES.items():
        path = os.path.join(ROOT, "models", name)
        cfg = AutoConfig.from_pretrained(path, **overrides)
        cfg._attn_implementation = "eager"
        cls = AutoModel if name == "tiny-bert" else AutoModelForCausalLM
        model = cls.from_pretrained(path, config=cfg, dtype=torch.float32)
        ids = torch.tensor([[3, 7, 1, 12, 5, 9, 2, 11]])

        def run():
            o = model(ids)
            return (o.last_hidden_state if name == "tiny-bert" else o.logits)[0]

        model.eval()
        with torch.no_grad():
            eval_out = run()
            model.train()
            outs = torch.stack([run() for _ in range(N)]).double()
        out["cases"].append({
            "model": name, "overrides": overrides, "ids": ids[0].tolist(),
            "shape": list(eval_out.shape), "eval": eval_out.flatten().tolist(),
            "mean": outs.mean(0).flatten().tolist(), "std": outs.std(0).flatten().tolist(),
        })
        print(name, "mean std", float(outs.std(0).mean()))
    with open(os.path.join(ROOT, "dropout_stats.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
