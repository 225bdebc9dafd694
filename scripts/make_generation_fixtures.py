#!/usr/bin/env python3
"""Greedy generations of transformers under each generation option, for
crates/ember-models/tests/generation_vs_transformers.rs.

transformers reads the GGUF files of scripts/fetch_assets.sh itself (dequantized to f32):
SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M. For each case it records the prompt ids,
the options (transformers' names), the EOS ids used as stop tokens and the new tokens.

Usage: python scripts/make_generation_fixtures.py   (torch, transformers, gguf)
Writes tests/fixtures/generation_options.json.
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ASSETS = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "generation_options.json")
MODELS = {
    "smollm2": ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3": ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
}
NEW = 32


def chat(model, text):
    # Both files' chat formats written out (Gemma's GGUF carries no template).
    if model == "smollm2":
        return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    return f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"


def cases(model):
    # Prompts: a chat turn whose '\n' and role tokens repeat (the case of issue 33), a list
    # that invites repetition, and a base-model continuation.
    story = chat(model, "Write a short poem about the sea and the sky.")
    listing = chat(model, "List the days of the week, one per line.")
    fact = "The capital of France is Paris. The capital of Germany is Berlin. The capital of"
    return [
        ("penalty 1.1 chat", story, {"repetition_penalty": 1.1}),
        ("penalty 1.5 list", listing, {"repetition_penalty": 1.5}),
        ("penalty 0.8 fact", fact, {"repetition_penalty": 0.8}),
        ("no repeat 2-gram", listing, {"no_repeat_ngram_size": 2}),
        ("no repeat 3-gram fact", fact, {"no_repeat_ngram_size": 3}),
        ("min new tokens", chat(model, "Answer with one word: is the sky blue?"),
         {"min_new_tokens": 12}),
        ("stop string period", fact, {"stop_strings": ["."]}),
        ("stop strings inside tokens", story, {"stop_strings": ["ea", "\n\n"]}),
        ("bias single token", fact, {"sequence_bias": "ban-first"}),
        ("bias two tokens", listing, {"sequence_bias": "boost-pair"}),
        ("everything", story, {"repetition_penalty": 1.2, "no_repeat_ngram_size": 3,
                               "min_new_tokens": 4, "stop_strings": ["sky"]}),
    ]



def main():
    ref = {"max_new_tokens": NEW, "cases": []}
    for model, (d, f) in MODELS.items():
        path = os.path.join(ASSETS, d)
        tok = AutoTokenizer.from_pretrained(path, gguf_file=f)
        lm = AutoModelForCausalLM.from_pretrained(path, gguf_file=f, dtype=torch.float32).eval()
        eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id] if model == "smollm2" \
            else [tok.convert_tokens_to_ids("<end_of_turn>"), tok.eos_token_id]
        eos = sorted(set(eos))
        for name, prompt, opts in cases(model):
            ids = tok(prompt, return_tensors="pt", add_special_tokens=(model == "gemma3")).input_ids
            kwargs = dict(opts)
            with torch.no_grad():
                plain = lm.generate(ids, max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                                    pad_token_id=eos[0])[0, ids.shape[1]:].tolist()
            bias = kwargs.pop("sequence_bias", None)
            if bias == "ban-first":
                kwargs["sequence_bias"] = {(plain[0],): -100.0}
            elif bias == "boost-pair":
                # After the plain output's 3rd token, push its 2nd most likely successor.
                kwargs["sequence_bias"] = {(plain[2], plain[4]): 25.0, (plain[1],): -1.5}
            if "stop_strings" in kwargs:
                kwargs["tokenizer"] = tok
            with torch.no_grad():
                gen = lm.generate(ids, max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                                  pad_token_id=eos[0], **kwargs)
            new = gen[0, ids.shape[1]:].tolist()
            kwargs.pop("tokenizer", None)
            if "sequence_bias" in kwargs:
                kwargs["sequence_bias"] = [[list(k), v] for k, v in kwargs["sequence_bias"].items()]
            ref["cases"].append({"model": model, "name": name, "prompt": ids[0].tolist(),
                                 "options": kwargs, "eos": eos, "plain": plain, "tokens": new})
            print(f"{model} {name}: {tok.decode(new)!r}" + (" (same as plain)" if new == plain else ""))
    with open(OUT, "w") as fh:
        json.dump(ref, fh, indent=1)


if __name__ == "__main__":
    main()
