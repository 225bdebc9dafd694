#!/usr/bin/env python3
"""Writes PyTorch's mixed-precision references for Ember's autocast and GradScaler tests.

Usage: python scripts/make_amp_fixtures.py   (the venv of scripts/setup_venv.sh)

Output:
  tests/fixtures/amp.json          the dtype table (op, autocast dtype, input dtype -> output
                                   dtype under torch.autocast("cpu")), the one-block
                                   transformer's config and loss, and GradScaler trajectories
  tests/fixtures/amp.safetensors   the one-block transformer's inputs, f32 parameters, logits
                                   and f32 parameter gradients under bf16 and f16 autocast
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
NAME = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16", torch.float64: "f64"}

# ---------------------------------------------------------------- the dtype table
# Each op takes one float tensor `a` (4, 8) in the input dtype; any other operand is f32, as
# parameters are. The Rust test runs the same list (ember-core/tests/autocast.rs).
g = torch.Generator().manual_seed(0)
W = torch.randn(8, 8, generator=g)
B8 = torch.randn(8, generator=g)
T = torch.randint(0, 8, (4,), generator=g)
X32 = torch.randn(4, 8, generator=g)
OPS = {
    "matmul": lambda a: a @ W,
    "linear": lambda a: F.linear(a, W, B8),
    "addmm": lambda a: torch.addmm(B8, a, W),
    "bmm": lambda a: torch.bmm(a[None], W[None]),
    "scaled_dot_product_attention": lambda a: F.scaled_dot_product_attention(a[None, None], a[None, None], a[None, None], is_causal=True),
    "softmax": lambda a: a.softmax(-1),
    "log_softmax": lambda a: a.log_softmax(-1),
    "layer_norm": lambda a: F.layer_norm(a, (8,), B8, B8),
    "rms_norm": lambda a: F.rms_norm(a, (8,), B8),
    "cross_entropy": lambda a: F.cross_entropy(a, T),
    "mse_loss": lambda a: F.mse_loss(a, X32),
    "binary_cross_entropy_with_logits": lambda a: F.binary_cross_entropy_with_logits(a, X32.sigmoid()),
    "sum": lambda a: a.sum(),
    "mean": lambda a: a.mean(),
    "exp": lambda a: a.exp(),
    "tanh": lambda a: a.tanh(),
    "gelu": lambda a: F.gelu(a),
    "gelu_tanh": lambda a: F.gelu(a, approximate="tanh"),
    "relu": lambda a: a.relu(),
    "add_f32": lambda a: a + X32,
    "mul_scalar": lambda a: a * 2.0,
    "cat_f32": lambda a: torch.cat([a, X32]),
    "stack_f32": lambda a: torch.stack([a, X32]),
    "transpose": lambda a: a.t(),
}
table = []
for cast in (torch.bfloat16, torch.float16):
    for inp in (torch.float32, cast):  # (torch itself fails on f16 inputs under bf16 autocast)
        a = X32.to(inp)
        with torch.autocast("cpu", dtype=cast):
            for name, f in OPS.items():
                table.append({"op": name, "autocast": NAME[cast], "input": NAME[inp], "output": NAME[f(a).dtype]})

# ---------------------------------------------------------------- one transformer block
# Pre-norm GPT block with a head: h = x + proj(attn(ln1(x))); h = h + fc2(gelu(fc1(ln2(h))));
# logits = head(ln_f(h)); loss = cross_entropy(logits, targets).
Bt, Tt, C, H, V = 2, 16, 32, 4, 48
g = torch.Generator().manual_seed(1)
tensors = {"x": torch.randn(Bt, Tt, C, generator=g), "targets": torch.randint(0, V, (Bt, Tt), generator=g)}
shapes = {
    "ln1.weight": (C,), "ln1.bias": (C,), "attn.weight": (3 * C, C), "attn.bias": (3 * C,),
    "proj.weight": (C, C), "proj.bias": (C,), "ln2.weight": (C,), "ln2.bias": (C,),
    "fc1.weight": (4 * C, C), "fc1.bias": (4 * C,), "fc2.weight": (C, 4 * C), "fc2.bias": (C,),
    "lnf.weight": (C,), "lnf.bias": (C,), "head.weight": (V, C),
}
params = {}
for n, s in shapes.items():
    if n.endswith("weight") and len(s) == 1:
        params[n] = 1.0 + 0.1 * torch.randn(s, generator=g)
    else:
        params[n] = torch.randn(s, generator=g) * (0.2 if len(s) == 2 else 0.05)
    tensors["param/" + n] = params[n].clone()


def block(p, x, targets):
    h = F.layer_norm(x, (C,), p["ln1.weight"], p["ln1.bias"])
    qkv = F.linear(h, p["attn.weight"], p["attn.bias"])  # (B, T, 3C)
    q, k, v = qkv.split(C, dim=-1)
    heads = lambda t: t.view(Bt, Tt, H, C // H).transpose(1, 2)  # (B, H, T, D)
    y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
    y = y.transpose(1, 2).reshape(Bt, Tt, C)
    x = x + F.linear(y, p["proj.weight"], p["proj.bias"])
    h = F.layer_norm(x, (C,), p["ln2.weight"], p["ln2.bias"])
    h = F.linear(F.gelu(F.linear(h, p["fc1.weight"], p["fc1.bias"])), p["fc2.weight"], p["fc2.bias"])
    x = x + h
    logits = F.linear(F.layer_norm(x, (C,), p["lnf.weight"], p["lnf.bias"]), p["head.weight"])
    return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


block_ref = {}
for cast in (None, torch.bfloat16, torch.float16):
    tag = "f32" if cast is None else NAME[cast]
    p = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    if cast is None:
        logits, loss = block(p, tensors["x"], tensors["targets"])
    else:
        with torch.autocast("cpu", dtype=cast):
            logits, loss = block(p, tensors["x"], tensors["targets"])
    loss.backward()
    tensors[f"{tag}/logits"] = logits.detach().float()
    for n in shapes:
        assert p[n].grad.dtype == torch.float32
        tensors[f"{tag}/grad/{n}"] = p[n].grad
    block_ref[tag] = {"loss": loss.item(), "logits_dtype": NAME[logits.dtype], "loss_dtype": NAME[loss.dtype]}

# ---------------------------------------------------------------- GradScaler trajectories
# A synthetic run: one f32 parameter, the gradient of (scale · loss) is scale · c_t, with
# overflows injected (inf or nan) at chosen steps; a small growth interval shows growth too.
def trajectory(steps, inject, **kw):
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kw)
    out = []
    for t in range(steps):
        opt.zero_grad()
        loss = (w * torch.tensor([0.5 + t, -1.0])).sum()
        scaler.scale(loss).backward()
        if t in inject:
            w.grad[0] = float(inject[t])
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(w, 1.0)
        scale_before = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        out.append({"step": t, "scale_before": scale_before, "scale_after": scaler.get_scale(),
                    "skipped": t in inject, "w": w.detach().tolist()})
    return out


scaler_cases = [
    {"name": "defaults", "kwargs": {}, "steps": 6, "inject": {1: "inf", 2: "nan"}},
    {"name": "growth", "kwargs": {"init_scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3},
     "steps": 12, "inject": {4: "inf", 9: "-inf"}},
]
for case in scaler_cases:
    case["trajectory"] = trajectory(case["steps"], case["inject"], **case["kwargs"])
    case["inject"] = {str(k): v for k, v in case["inject"].items()}

save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(ROOT, "amp.safetensors"))
with open(os.path.join(ROOT, "amp.json"), "w") as f:
    json.dump({"torch": torch.__version__, "dtype_table": table,
               "block": {"B": Bt, "T": Tt, "C": C, "H": H, "V": V, **block_ref},
               "grad_scaler": scaler_cases}, f, indent=1)
print(f"wrote amp fixtures: {len(table)} dtype rows, block losses "
      + ", ".join(f"{k} {v['loss']:.5f}" for k, v in block_ref.items()))
