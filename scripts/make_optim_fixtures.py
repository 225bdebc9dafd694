#!/usr/bin/env python3
"""torch.optim reference trajectories, clipping and LR schedules for ember-optim's tests.

Usage: python scripts/make_optim_fixtures.py   (needs torch and safetensors)

Writes tests/fixtures/optim.safetensors ("init.<p>", "grad.<step>.<p>", "<config>.<step>.<p>":
parameters after each step; "clip.*") and tests/fixtures/optim.json (configs, LR schedules).
"""
import json
import os

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
STEPS = 6
init = {"w": torch.randn(4, 3), "b": torch.randn(3)}
grads = [{k: torch.randn_like(v) for k, v in init.items()} for _ in range(STEPS)]
out = {f"init.{k}": v.clone() for k, v in init.items()}
for s, g in enumerate(grads):
    for k, v in g.items():
        out[f"grad.{s}.{k}"] = v.clone()

CONFIGS = {
    "sgd": ("SGD", {"lr": 0.1}),
    "sgd_momentum": ("SGD", {"lr": 0.1, "momentum": 0.9}),
    "sgd_nesterov_wd": ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "sgd_dampening": ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.1}),
    "adam": ("Adam", {"lr": 0.01}),
    "adam_wd": ("Adam", {"lr": 0.01, "weight_decay": 0.05}),
    "adamw": ("AdamW", {"lr": 0.01, "betas": (0.9, 0.95), "weight_decay": 0.1}),
}
for name, (cls, kw) in CONFIGS.items():
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    opt = getattr(torch.optim, cls)(list(params.values()), **kw)
    for s, g in enumerate(grads):
        for k, p in params.items():
            p.grad = g[k].clone()
        opt.step()
        for k, p in params.items():
            out[f"{name}.{s}.{k}"] = p.detach().clone()

# Clipping: the global norm and the clipped gradients.
params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
for k, p in params.items():
    p.grad = grads[0][k].clone() * 3
norm = torch.nn.utils.clip_grad_norm_(list(params.values()), 1.5)
out["clip.norm"] = norm.reshape(1)
for k, p in params.items():
    out[f"clip.{k}"] = p.grad.clone()

# LR schedules, 25 steps each.
def lrs(make):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    values = []
    for _ in range(25):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return values

S = torch.optim.lr_scheduler
schedules = {
    "step": lrs(lambda o: S.StepLR(o, step_size=4, gamma=0.5)),
    "linear": lrs(lambda o: S.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=8)),
    "cosine": lrs(lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=0.001)),
    "warmup_cosine": lrs(lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4),
                                                   S.CosineAnnealingLR(o, T_max=16, eta_min=0.01)],
                                                   milestones=[4])),
}
save_file(out, os.path.join(ROOT, "optim.safetensors"))
with open(os.path.join(ROOT, "optim.json"), "w") as f:
    json.dump({"steps": STEPS, "configs": {k: {"class": c, **{a: (list(b) if isinstance(b, tuple) else b)
               for a, b in kw.items()}} for k, (c, kw) in CONFIGS.items()},
               "schedules": schedules, "torch": torch.__version__}, f, indent=1)
print("wrote optim fixtures:", list(CONFIGS), list(schedules))
