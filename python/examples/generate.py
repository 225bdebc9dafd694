"""Chat with SmolLM2-135M-Instruct (the Q4_1 GGUF of scripts/fetch_assets.sh, kept quantized)
or any Hugging Face directory / GGUF file, streaming the answer as it is generated.

    python python/examples/generate.py "What is the capital of France?"
    python python/examples/generate.py --model path/to/model.gguf --max-new-tokens 200 "..."
"""

import argparse
import os
import sys
import time

import ember


def main():
    default = os.path.join(os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets")),
                           "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prompt", nargs="?", default="What is the capital of France?")
    ap.add_argument("--model", default=default)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} does not exist: run `bash scripts/fetch_assets.sh` or pass --model")

    model = ember.models.AutoModelForCausalLM.from_pretrained(args.model)
    prompt = model.tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}])
    start, pieces = time.perf_counter(), 0
    for piece in model.stream(prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_p=args.top_p, seed=args.seed):
        print(piece, end="", flush=True)
        pieces += 1
    print(f"\n[{model.model_type}, {pieces} pieces in {time.perf_counter() - start:.2f} s]")


if __name__ == "__main__":
    main()
