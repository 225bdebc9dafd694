"""PyTorch counterparts of Ember's benchmark workloads (bench/src/workloads.rs).

Same configurations, same warmup and repeats; prints one JSON line:
{"value": median, "unit": ..., "runs": [...], "phases": {...}, "peak_rss_mib": ...}.
`--dtype bf16` runs what a PyTorch user runs on a CPU with AVX512_BF16: bf16 matrices for
GEMM, `torch.autocast("cpu", dtype=torch.bfloat16)` for training, bf16 weights for inference.
Run by `cargo run --release -p ember-bench`; usable alone:
    python bench/torch_bench.py nanogpt --repeats 5 --threads 2 --dtype bf16
"""
import contextlib

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


BF16 = False  # set from --dtype


def autocast(device):
    """bf16 autocast for training in --dtype bf16, nothing otherwise."""
    if BF16:
        return torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gemm(n, repeats, device):
    torch.manual_seed(0)
    dtype = torch.bfloat16 if BF16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    inner = min(max(math.ceil((1 << 30) / (2 * n**3)), 1), 64)
    for _ in range(2):
        a @ b
    sync(device)
    runs, times = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        secs = (time.perf_counter() - t) / inner
        runs.append(2 * n**3 / secs / 1e9)
        times.append(secs * 1e3)
    return dict(value=statistics.median(runs), runs=runs, unit="GFLOP/s",
                phases={"matmul": statistics.median(times)})


class Block(nn.Module):
    """nanoGPT's block with bias=False and dropout=0."""

    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(c, bias=False)
        self.c_attn = nn.Linear(c, 3 * c, bias=False)
        self.attn_proj = nn.Linear(c, c, bias=False)
        self.ln_2 = nn.LayerNorm(c, bias=False)
        self.c_fc = nn.Linear(c, 4 * c, bias=False)
        self.mlp_proj = nn.Linear(4 * c, c, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NanoGpt(nn.Module):
    def __init__(self, vocab, block, n_layer, n_head, c):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.wpe = nn.Embedding(block, c)
        self.h = nn.ModuleList(Block(c, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(c, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def train_steps(repeats, tokens, batch, loss_fn, opt, device):
    runs, fwd, bwd, stp = [], [], [], []
    for i in range(repeats + 2):
        x, y = batch()
        t0 = time.perf_counter()
        with autocast(device):
            loss = loss_fn(x, y)
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t3 = time.perf_counter()
        if i >= 2:
            runs.append(tokens / (t3 - t0))
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            stp.append((t3 - t2) * 1e3)
    return dict(value=statistics.median(runs), runs=runs, unit="tokens/s",
                phases={"forward": statistics.median(fwd), "backward": statistics.median(bwd),
                        "optimizer": statistics.median(stp)})


def nanogpt(repeats, device, block=128, batch=32):
    vocab = 65
    torch.manual_seed(0)
    model = NanoGpt(vocab, block, 4, 4, 128).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))

    def batches():
        x = torch.randint(vocab, (batch, block), device=device)
        y = torch.randint(vocab, (batch, block), device=device)
        return x, y
    return train_steps(repeats, batch * block, batches, model, opt, device)


def gpt2(device, inference=False):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).to(device)  # 124M, random init
    if inference and BF16:
        model = model.to(torch.bfloat16)  # bf16 weights, as users run inference
    return model


def gpt2_prefill(repeats, device):
    model = gpt2(device, inference=True).eval()
    ids = torch.randint(50257, (1, 128), device=device)
    runs, times = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t = time.perf_counter()
            model(ids, use_cache=False)
            sync(device)
            dt = time.perf_counter() - t
            if i >= 1:
                runs.append(128 / dt)
                times.append(dt * 1e3)
    return dict(value=statistics.median(runs), runs=runs, unit="tokens/s",
                phases={"prefill 128": statistics.median(times)})


def gpt2_decode(repeats, device):
    model = gpt2(device, inference=True).eval()
    prompt = torch.randint(50257, (1, 128), device=device)
    runs, times = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            past = model(prompt, use_cache=True).past_key_values
            nxt = torch.zeros(1, 1, dtype=torch.long, device=device)
            t = time.perf_counter()
            for _ in range(32):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.item()
            dt = time.perf_counter() - t
            if i >= 1:
                runs.append(32 / dt)
                times.append(dt / 32 * 1e3)
    return dict(value=statistics.median(runs), runs=runs, unit="tokens/s",
                phases={"per token": statistics.median(times)})


def gpt2_train(repeats, device, seq=128, batch=4):
    model = gpt2(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def batches():
        ids = torch.randint(50257, (batch, seq), device=device)
        return ids, ids
    return train_steps(repeats, batch * seq, batches, lambda x, y: model(x, labels=y).loss, opt, device)


def smollm2(device):
    """SmolLM2-135M's shape, randomly initialized (as Ember's side)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                      num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                      max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).to(device).train()


def smollm2_finetune(repeats, device, lora=False):
    """4 x 256 tokens, AdamW; with LoRA r = 8 (alpha 16) on q, k, v, o through peft."""
    model = smollm2(device)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                 task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def batches():
        ids = torch.randint(49152, (4, 256), device=device)
        return ids, ids
    return train_steps(repeats, 4 * 256, batches, lambda x, y: model(x, labels=y).loss, opt, device)


def gpt2_train_ckpt(repeats, device, checkpointing):
    """GPT-2 124M, 4 x 512 tokens, with or without gradient checkpointing; no dropout (as
    Ember's GPT-2)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).to(device).train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def batches():
        ids = torch.randint(50257, (4, 512), device=device)
        return ids, ids
    return train_steps(repeats, 4 * 512, batches, lambda x, y: model(x, labels=y).loss, opt, device)


WORKLOADS = {
    "ft-smollm2-full": lambda r, d: smollm2_finetune(r, d, lora=False),
    "ft-smollm2-lora": lambda r, d: smollm2_finetune(r, d, lora=True),
    "ft-gpt2-512": lambda r, d: gpt2_train_ckpt(r, d, False),
    "ft-gpt2-512-ckpt": lambda r, d: gpt2_train_ckpt(r, d, True),
    "gemm512": lambda r, d: gemm(512, r, d),
    "gemm1024": lambda r, d: gemm(1024, r, d),
    "gemm2048": lambda r, d: gemm(2048, r, d),
    "nanogpt": nanogpt,
    "nanogpt-1024": lambda r, d: nanogpt(r, d, block=1024, batch=4),
    "gpt2-prefill": gpt2_prefill,
    "gpt2-decode": gpt2_decode,
    "gpt2-train": gpt2_train,
    "gpt2-train-1024": lambda r, d: gpt2_train(r, d, seq=1024, batch=1),
}

# The workloads Ember also runs in bf16 (its `-bf16` names): `NAME-bf16` here is `NAME` with
# `--dtype bf16`.
BF16_NAMES = ["gemm2048", "nanogpt", "gpt2-prefill", "gpt2-decode", "gpt2-train"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("workload", choices=sorted(WORKLOADS) + sorted(w + "-bf16" for w in BF16_NAMES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    global BF16
    BF16 = a.dtype == "bf16" or a.workload.endswith("-bf16")
    torch.set_num_threads(a.threads)
    out = WORKLOADS[a.workload.removesuffix("-bf16")](a.repeats, a.device)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["torch"] = torch.__version__
    out["dtype"] = "bf16" if BF16 else "f32"
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
