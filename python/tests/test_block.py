"""``ember.nn.Block`` against the same block written with torch (same parameter names and
weights): Llama (RMSNorm, SwiGLU, grouped-query heads, causal), GPT (pre-norm LayerNorm, tanh
GELU, causal) and BERT (post-norm, with a padding mask) shapes, outputs and input gradients;
dropout follows train/eval."""

import os

import numpy as np
import pytest

import ember
import ember.nn as nn

if os.environ.get("EMBER_REQUIRE_VENV") == "1":
    import torch
else:
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")
TF = torch.nn.functional


class TorchBlock(torch.nn.Module):
    def __init__(self, e):
        super().__init__()
        self.e = e
        sd = {k: torch.tensor(v.detach().numpy()) for k, v in e.state_dict().items()}
        self.p = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in sd.items()})

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def lin(self, x, name):
        b = self.p[(name + ".bias").replace(".", "__")] if (name + ".bias").replace(".", "__") in self.p else None
        return TF.linear(x, self.w(name + ".weight"), b)

    def norm(self, x, name):
        e = self.e
        layer = getattr(e, name)
        if isinstance(layer, nn.RMSNorm):
            return TF.rms_norm(x, (x.shape[-1],), self.w(name + ".weight"), layer.eps)
        key = (name + ".bias").replace(".", "__")
        return TF.layer_norm(x, (x.shape[-1],), self.w(name + ".weight"),
                             self.p[key] if key in self.p else None, layer.eps)

    def attn(self, x, mask):
        a = self.e.self_attn
        b, t, c = x.shape
        q = self.lin(x, "self_attn.q_proj").reshape(b, t, a.num_heads, a.head_dim).transpose(1, 2)
        k = self.lin(x, "self_attn.k_proj").reshape(b, t, a.num_kv_heads, a.head_dim).transpose(1, 2)
        v = self.lin(x, "self_attn.v_proj").reshape(b, t, a.num_kv_heads, a.head_dim).transpose(1, 2)
        y = TF.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=a.causal, enable_gqa=True)
        return self.lin(y.transpose(1, 2).reshape(b, t, c), "self_attn.o_proj")

    def mlp(self, x):
        m = self.e.mlp
        act = {"gelu": TF.gelu, "gelu_tanh": lambda v: TF.gelu(v, approximate="tanh"),
               "silu": TF.silu, "relu": TF.relu}[m.activation]
        if m.gated:
            return self.lin(act(self.lin(x, "mlp.gate_proj")) * self.lin(x, "mlp.up_proj"), "mlp.down_proj")
        return self.lin(act(self.lin(x, "mlp.fc1")), "mlp.fc2")

    def forward(self, x, mask=None):
        if self.e.pre_norm:
            x = x + self.attn(self.norm(x, "input_layernorm"), mask)
            return x + self.mlp(self.norm(x, "post_attention_layernorm"))
        x = self.norm(x + self.attn(x, mask), "input_layernorm")
        return self.norm(x + self.mlp(x), "post_attention_layernorm")


@pytest.mark.parametrize("kind", ["llama", "gpt", "bert"])
def test_block_equals_the_same_block_in_torch(kind):
    ember.manual_seed(0)
    block = {"llama": lambda: nn.Block.llama(16, 4, 40, num_kv_heads=2),
             "gpt": lambda: nn.Block.gpt(16, 4, 64, dropout=0.1),
             "bert": lambda: nn.Block.bert(16, 4, 64, dropout=0.1)}[kind]()
    block.eval()
    for name, p in block.named_parameters():  # norms away from 1/0, so they matter
        if "layernorm" in name:
            p.data = p.detach() + ember.randn(*p.shape) * 0.1
    ref = TorchBlock(block)
    x = np.random.default_rng(1).standard_normal((2, 6, 16)).astype(np.float32)
    mask, tmask = None, None
    if kind == "bert":
        keep = np.ones((2, 1, 1, 6), dtype=bool)
        keep[1, ..., 4:] = False
        mask, tmask = ember.tensor(keep), torch.tensor(keep)
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = block(ex, mask), ref(tx, tmask)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    ty.square().sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    if kind != "llama":  # dropout on in training mode
        block.train()
        assert not np.allclose(block(ex, mask).detach().numpy(), y.detach().numpy())
