#!/usr/bin/env python3
"""Task heads on the tiny BERT of tests/fixtures/models, made and run by transformers, for
crates/ember-models/tests/heads_vs_transformers.rs; and, given a directory Ember saved, a check
that transformers loads it with the same logits.

Writes tests/fixtures/models/tiny-bert-{seq,tok,mlm}/ (BertForSequenceClassification with 3
labels, BertForTokenClassification with 5, BertForMaskedLM) and
tests/fixtures/models/tiny-bert-heads_ref.safetensors: the inputs, and per head in eval mode
the logits, the loss with labels and the gradient of every parameter (HF names); for the
sequence classifier also the multi-label loss (float labels) and its gradients.

Usage: python scripts/make_head_fixtures.py
       python scripts/make_head_fixtures.py --check KIND DIR LOGITS.safetensors
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, BertConfig, BertForMaskedLM,
                          BertForSequenceClassification, BertForTokenClassification)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")
AUTO = {"seq": AutoModelForSequenceClassification, "tok": AutoModelForTokenClassification,
        "mlm": AutoModelForMaskedLM, "causal-seq": AutoModelForSequenceClassification}
# Sequence classifiers on the causal tiny models: (name, base model, pad token id).
CAUSAL = [("gpt2", "tiny-gpt2", 0), ("llama", "tiny-llama", 0), ("gemma3", "tiny-gemma3", 0)]


def inputs():
    ids = torch.tensor([[2, 15, 7, 33, 9, 21, 3], [2, 11, 5, 3, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0, 0]])
    return ids, mask, types


def check(kind, path, logits_file):
    """transformers loads Ember's saved head: logits equal Ember's within 1e-5."""
    model = AUTO[kind].from_pretrained(path).eval()
    ref = load_file(logits_file)
    with torch.no_grad():
        if kind == "causal-seq":
            out = model(input_ids=ref["ids"], attention_mask=ref["mask"]).logits
        else:
            out = model(input_ids=ref["ids"], attention_mask=ref["mask"],
                        token_type_ids=ref["types"]).logits
    diff = float((out - ref["logits"]).abs().max())
    print(f"transformers on Ember's {kind} head: max |diff| {diff:.3e}")
    sys.exit(0 if diff <= 1e-5 else 1)


def main():
    torch.manual_seed(0)
    base = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=48, max_position_embeddings=64, type_vocab_size=2)
    ids, mask, types = inputs()
    ref = {"ids": ids, "mask": mask, "types": types}
    labels = {
        "seq": torch.tensor([2, 0]),
        "tok": torch.tensor([[0, 1, 4, 2, 3, 0, 1], [0, 2, 2, 1, -100, -100, -100]]),
        "mlm": torch.tensor([[-100, 15, -100, -100, 9, -100, -100], [-100, -100, 5, -100, -100, -100, -100]]),
    }
    models = {
        "seq": BertForSequenceClassification(BertConfig(
            **base, id2label={0: "negative", 1: "neutral", 2: "positive"},
            label2id={"negative": 0, "neutral": 1, "positive": 2})),
        "tok": BertForTokenClassification(BertConfig(**base, num_labels=5)),
        "mlm": BertForMaskedLM(BertConfig(**base)),
    }
    for kind, model in models.items():
        model.eval()
        model.save_pretrained(os.path.join(ROOT, f"tiny-bert-{kind}"))
        ref[f"{kind}.labels"] = labels[kind]
        cases = [(kind, labels[kind])]
        if kind == "seq":
            multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
            ref["seq_multi.labels"] = multi
            cases.append(("seq_multi", multi))
        for name, lab in cases:
            model.config.problem_type = None  # inferred from the labels on each call
            model.zero_grad()
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=lab)
            out.loss.backward()
            ref[f"{name}.logits"] = out.logits.detach()
            ref[f"{name}.loss"] = out.loss.detach().reshape(1)
            for n, p in model.named_parameters():
                ref[f"{name}.grad.{n}"] = p.grad.detach().clone()
            print(name, "loss", float(out.loss))
    save_file({k: v.contiguous() for k, v in ref.items()},
              os.path.join(ROOT, "tiny-bert-heads_ref.safetensors"))
    causal()


def causal():
    """XForSequenceClassification on the causal tiny models: right-padded rows, the score of
    each row's last real token, cross-entropy with 3 labels."""
    torch.manual_seed(1)
    ids = torch.tensor([[5, 17, 9, 30, 12, 4], [8, 21, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([1, 2])
    ref = {"ids": ids, "mask": mask, "labels": labels}
    for name, base, pad in CAUSAL:
        path = os.path.join(ROOT, base)
        cfg = AutoConfig.from_pretrained(path, num_labels=3, pad_token_id=pad)
        model = AutoModelForSequenceClassification.from_config(cfg).eval()
        model.save_pretrained(os.path.join(ROOT, f"{base}-seq"))
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        ref[f"{name}.logits"] = out.logits.detach()
        ref[f"{name}.loss"] = out.loss.detach().reshape(1)
        for n, p in model.named_parameters():
            ref[f"{name}.grad.{n}"] = p.grad.detach().clone()
        print(name, type(model).__name__, "loss", float(out.loss))
    save_file({k: v.contiguous() for k, v in ref.items()},
              os.path.join(ROOT, "causal-seq_ref.safetensors"))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
