"""Ember from Python against PyTorch, back to back in one process per framework:

- ``small-op``: Python overhead per small op, ``a + b`` on 1-element tensors in a loop of
  100,000 (microseconds per op);
- ``nanogpt-py``: a training step of nanoGPT (4 layers, width 128, context 128, batch 32)
  written in Python, with ``ember.nn`` (python/examples/train_gpt.py's model) and with
  ``torch.nn`` (the same modules), AdamW, tokens per second;
- ``smollm2-generate-py``: SmolLM2-135M Q4_1 greedy decoding from Python
  (``AutoModelForCausalLM.generate``), tokens per second, to set beside the Rust
  ``smollm2-q4_1-decode`` row of ``ember-bench``;
- ``gpt2-generate-py``: GPT-2 124M decode tokens/s through ``model.generate``, the same
  measurement as ``ember-bench gpt2-generate`` (which writes the model directory it reads).

    python bench/python_bench.py [--threads 2] [--repeats 5]

Prints the CPU, the load and one line per figure; torch runs on the same thread count.
"""

import argparse
import os
import statistics
import sys
import time


def cpu_line():
    name = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}; load {os.getloadavg()[0]:.2f}"


def small_op(fw, n=100_000):
    if fw == "ember":
        import ember as m
    else:
        import torch as m
    a, b = m.ones(1), m.ones(1)
    for _ in range(1000):
        a + b
    start = time.perf_counter()
    for _ in range(n):
        a + b
    return (time.perf_counter() - start) / n * 1e6


def nanogpt(fw, steps, B=32, T=128):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python", "examples"))
    if fw == "ember":
        import ember
        import train_gpt as g

        ember.manual_seed(0)
        model = g.GPT(65, T, 4, 4, 128)
        opt = ember.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        x = (ember.rand(B, T) * 65).long()
        y = (ember.rand(B, T) * 65).long()

        def step():
            loss = model.loss(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
    else:
        import torch
        import torch.nn as tnn
        import torch.nn.functional as F

        class Attn(tnn.Module):
            def __init__(s, C, H):
                super().__init__()
                s.H, s.c_attn, s.c_proj = H, tnn.Linear(C, 3 * C, bias=False), tnn.Linear(C, C, bias=False)

            def forward(s, x):
                Bx, Tx, C = x.shape
                q, k, v = s.c_attn(x).reshape(Bx, Tx, 3, s.H, C // s.H).permute(2, 0, 3, 1, 4)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return s.c_proj(y.transpose(1, 2).reshape(Bx, Tx, C))

        class Block(tnn.Module):
            def __init__(s, C, H):
                super().__init__()
                s.ln_1, s.attn = tnn.LayerNorm(C, bias=False), Attn(C, H)
                s.ln_2 = tnn.LayerNorm(C, bias=False)
                s.c_fc, s.c_proj = tnn.Linear(C, 4 * C, bias=False), tnn.Linear(4 * C, C, bias=False)

            def forward(s, x):
                x = x + s.attn(s.ln_1(x))
                return x + s.c_proj(F.gelu(s.c_fc(s.ln_2(x))))

        class GPT(tnn.Module):
            def __init__(s, V, Tm, L, H, C):
                super().__init__()
                s.wte, s.wpe = tnn.Embedding(V, C), tnn.Embedding(Tm, C)
                s.h = tnn.ModuleList(Block(C, H) for _ in range(L))
                s.ln_f = tnn.LayerNorm(C, bias=False)

            def loss(s, ids, tg):
                x = s.wte(ids) + s.wpe(torch.arange(ids.shape[1]))
                for b in s.h:
                    x = b(x)
                logits = F.linear(s.ln_f(x), s.wte.weight)
                return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1))

        torch.manual_seed(0)
        model = GPT(65, T, 4, 4, 128)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        x, y = torch.randint(0, 65, (B, T)), torch.randint(0, 65, (B, T))

        def step():
            loss = model.loss(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return B * T / statistics.median(times)


def generate(n=64):
    import ember

    path = os.path.join(os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets")),
                        "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        return None
    m = ember.models.AutoModelForCausalLM.from_pretrained(path)
    prompt = m.tokenizer.encode("Once upon a time", add_special_tokens=False)
    m.generate(prompt, max_new_tokens=8, stop_tokens=[])
    t = time.perf_counter()
    out = m.generate(prompt, max_new_tokens=n, stop_tokens=[])
    return len(out) / (time.perf_counter() - t)


def gpt2_generate(repeats):
    """GPT-2 124M (random) from the directory ``ember-bench gpt2-generate`` writes, greedy
    after a 128-token prompt through ``model.generate``: decode tokens/s over 32 new tokens,
    a 1-token generation (the prefill) timed apart and taken off, as the Rust workload."""
    import tempfile

    import ember

    path = os.path.join(tempfile.gettempdir(), "ember-bench-gpt2-124m")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        return None
    m = ember.models.AutoModelForCausalLM.from_pretrained(path)
    prompt = [i * 389 % 50257 for i in range(128)]

    def timed(n):
        t = time.perf_counter()
        out = m.generate(prompt, max_new_tokens=n, stop_tokens=[])
        assert len(out) == n
        return time.perf_counter() - t

    timed(33)
    runs = []
    for _ in range(repeats):
        one, full = timed(1), timed(33)
        runs.append(32 / (full - one))
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--framework", choices=["ember", "torch"])
    args = ap.parse_args()
    if args.framework:  # a child process: one framework
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
        if args.framework == "torch":
            import torch
            torch.set_num_threads(args.threads)
        print(f"small-op {small_op(args.framework):.3f}")
        print(f"nanogpt-py {nanogpt(args.framework, args.repeats):.1f}")
        if args.framework == "ember":
            g = generate()
            print(f"smollm2-generate-py {g:.1f}" if g else "smollm2-generate-py n/a (asset missing)")
            g = gpt2_generate(args.repeats)
            print(f"gpt2-generate-py {g:.1f}" if g else
                  "gpt2-generate-py n/a (run `ember-bench gpt2-generate` first: it writes the model)")
        return
    import subprocess

    print(f"python_bench on {cpu_line()}, {args.threads} threads, {time.strftime('%Y-%m-%d %H:%M')}")
    for fw in ["ember", "torch"]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        out = subprocess.run([sys.executable, __file__, "--framework", fw, "--threads", str(args.threads),
                              "--repeats", str(args.repeats)], env=env, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            print(f"{fw:6s} {line}")
        if out.returncode:
            print(out.stderr[-2000:])
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
