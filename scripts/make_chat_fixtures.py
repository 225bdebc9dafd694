#!/usr/bin/env python3
"""Chat templates rendered by transformers' apply_chat_template, for Ember's minijinja
renderer (crates/ember-models/tests/chat_templates.rs).

Usage: python scripts/make_chat_fixtures.py   (needs transformers, gguf; the SmolLM2 asset of
scripts/fetch_assets.sh for its template as stored in its GGUF)

Templates: tests/fixtures/chat_templates/*.jinja (Gemma 3, Qwen2.5, Qwen3, Llama 3 as
published in their tokenizer_config.json) and SmolLM2's `tokenizer.chat_template` read from
its GGUF. Writes tests/fixtures/chat_templates.json: per template its source, BOS/EOS
tokens, and cases (messages, add_generation_prompt, extra arguments such as tools and
enable_thinking) with transformers' output, or "error" when the template raises.
"""
import glob
import json
import os

from gguf import GGUFReader
from tokenizers import Tokenizer
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
ASSETS = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))

SPECIAL = {
    "gemma3": ("<bos>", "<eos>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "smollm2": ("<|im_start|>", "<|im_end|>"),
}
templates = {}
for path in sorted(glob.glob(os.path.join(ROOT, "chat_templates", "*.jinja"))):
    with open(path) as f:
        templates[os.path.basename(path)[:-6]] = f.read()
reader = GGUFReader(os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))
templates["smollm2"] = reader.fields["tokenizer.chat_template"].contents()

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city, in °C.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
CONVERSATIONS = {
    "one question": [{"role": "user", "content": "What is the capital of France?"}],
    "system and turns": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a prime  "},
    ],
    "reasoning and unicode": [
        {"role": "user", "content": "  Spaced, café 日本  "},
        {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nOk."},
        {"role": "user", "content": "Again?"},
    ],
    "tools": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
    ],
    "roles out of order": [
        {"role": "assistant", "content": "I speak first."},
        {"role": "assistant", "content": "Twice."},
    ],
}

out = {}
for name, source in templates.items():
    bos, eos = SPECIAL[name]
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE()), bos_token=bos, eos_token=eos)
    cases = []
    for conv_name, messages in CONVERSATIONS.items():
        extras = [{}]
        if conv_name == "tools":
            if not name.startswith("qwen"):
                continue
            extras = [{"tools": TOOLS}]
        if name == "qwen3":
            extras += [dict(e, enable_thinking=False) for e in extras]
        for extra in extras:
            for gen in (True, False):
                case = {"conversation": conv_name, "messages": messages,
                        "add_generation_prompt": gen, "extra": extra}
                try:
                    case["text"] = tok.apply_chat_template(
                        messages, chat_template=source, tokenize=False,
                        add_generation_prompt=gen, **extra)
                except Exception as e:  # the template raised
                    case["error"] = str(e)
                cases.append(case)
    out[name] = {"source": source, "bos_token": bos, "eos_token": eos, "cases": cases}
    print(name, len(cases), "cases", sum("error" in c for c in cases), "errors")
with open(os.path.join(ROOT, "chat_templates.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
