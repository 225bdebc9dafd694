#!/usr/bin/env python3
"""PyTorch reference fixtures for ember-nn's layers and losses.

Usage: python scripts/make_nn_fixtures.py   (needs torch and safetensors)

Writes tests/fixtures/nn/<module>.safetensors, each holding the module's state dict under its
Hugging Face parameter names (saved by PyTorch) plus "__input", "__output", "__gout" (a random
upstream gradient), "__grad.<param>" and "__grad_input" (PyTorch's gradients).
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn")
os.makedirs(ROOT, exist_ok=True)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rope(nn.Module):
    def __init__(self, hd, theta):
        super().__init__()
        self.inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))

    def forward(self, x, offset=0):  # x: (B, H, T, D), as transformers' Llama rotary
        t = torch.arange(offset, offset + x.shape[2]).float()
        freqs = torch.outer(t, self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        return x * emb.cos() + rotate_half(x) * emb.sin()


class Attention(nn.Module):
    """Llama's attention: GQA, RoPE, causal."""

    def __init__(self, dim=16, heads=4, kv_heads=2, theta=10000.0):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, dim, bias=False)
        self.rope = Rope(self.hd, theta)

    def forward(self, x):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        k = k.repeat_interleave(self.h // self.kv, dim=1)
        v = v.repeat_interleave(self.h // self.kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class CrossAttention(nn.Module):
    """Multi-query cross-attention (1 kv head) with q/k/v biases and a padding mask on the
    context: queries from x, keys and values from a fixed context."""

    def __init__(self, dim=12, heads=3, context_len=5):
        super().__init__()
        self.h, self.hd = heads, dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, self.hd)
        self.v_proj = nn.Linear(dim, self.hd)
        self.o_proj = nn.Linear(dim, dim)
        self.register_buffer("context", torch.randn(2, context_len, dim))
        keep = torch.ones(2, 1, 1, context_len, dtype=torch.bool)
        keep[1, ..., -2:] = False  # the second sequence's last two positions are padding
        self.register_buffer("mask", keep)

    def forward(self, x):
        b, t, _ = x.shape
        s = self.context.shape[1]
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(self.context).view(b, s, 1, self.hd).transpose(1, 2)
        v = self.v_proj(self.context).view(b, s, 1, self.hd).transpose(1, 2)
        k, v = k.expand(b, self.h, s, self.hd), v.expand(b, self.h, s, self.hd)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class GatedMlp(nn.Module):
    def __init__(self, dim=16, hidden=24):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Mlp(nn.Module):
    def __init__(self, dim=6, hidden=10):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.c_proj = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.input_layernorm = nn.RMSNorm(dim, eps=1e-6)
        self.self_attn = Attention(dim)
        self.post_attention_layernorm = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = GatedMlp(dim)

    def forward(self, x):
        h = x + self.self_attn(self.input_layernorm(x))
        return h + self.mlp(self.post_attention_layernorm(h))


def write(name, module, x, input_grad=True):
    start = {f"__start.{k}": v.clone() for k, v in module.state_dict().items() if "running" in k}
    with torch.no_grad():  # non-trivial norm weights
        for pname, p in module.named_parameters():
            if pname.endswith("layernorm.weight") or pname == "weight" and p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            if pname.endswith("bias") and p.dim() == 1 and "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    x = x.clone().requires_grad_(input_grad and x.is_floating_point())
    y = module(x)
    g = torch.randn_like(y)
    y.backward(g)
    out = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    out.update(start)
    out["__input"] = x.detach().clone()
    out["__output"] = y.detach().clone()
    out["__gout"] = g
    for pname, p in module.named_parameters():
        out[f"__grad.{pname}"] = p.grad.clone()
    if x.requires_grad:
        out["__grad_input"] = x.grad.clone()
    save_file(out, os.path.join(ROOT, f"{name}.safetensors"))


write("linear", nn.Linear(7, 5), torch.randn(3, 7))
write("linear_nobias", nn.Linear(7, 5, bias=False), torch.randn(2, 4, 7))
write("embedding", nn.Embedding(11, 6), torch.tensor([[1, 0, 10], [3, 3, 7]]))
write("layer_norm", nn.LayerNorm(6), torch.randn(2, 3, 6))
write("rms_norm", nn.RMSNorm(6, eps=1e-6), torch.randn(2, 3, 6))
write("mlp", Mlp(), torch.randn(2, 3, 6))
write("gated_mlp", GatedMlp(), torch.randn(2, 3, 16))
write("attention", Attention(), torch.randn(2, 5, 16))
write("block", Block(), torch.randn(2, 5, 16))
write("cross_attention", CrossAttention(), torch.randn(2, 4, 12))
write("conv1d", nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), torch.randn(2, 4, 9))
write("conv2d", nn.Conv2d(3, 5, (3, 2), padding=(1, 0), dilation=(1, 2)), torch.randn(2, 3, 6, 7))
write("batch_norm2d", nn.BatchNorm2d(3), torch.randn(4, 3, 5, 5))
bn_eval = nn.BatchNorm1d(4)
with torch.no_grad():
    bn_eval.running_mean.copy_(torch.randn(4))
    bn_eval.running_var.copy_(torch.rand(4) + 0.5)
write("batch_norm1d_eval", bn_eval.eval(), torch.randn(6, 4))
write("group_norm", nn.GroupNorm(2, 6), torch.randn(2, 6, 4, 3))


class SmallCnn(nn.Module):
    """conv → batch norm → relu → max pool → avg pool → adaptive pool → linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        h = F.avg_pool2d(h, 3, 1, 1, count_include_pad=False)
        return self.fc(F.adaptive_avg_pool2d(h, (2, 2)).flatten(1))


write("small_cnn", SmallCnn(), torch.randn(3, 2, 9, 10))


class Mse(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x):
        return F.mse_loss(x, self.target)


class Bce(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, x):
        return F.binary_cross_entropy_with_logits(x, self.target)


write("mse", Mse(torch.randn(4, 3)), torch.randn(4, 3))
write("bce_with_logits", Bce(torch.rand(4, 3)), torch.randn(4, 3) * 3)
print("wrote", sorted(os.listdir(ROOT)))
