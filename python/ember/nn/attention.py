"""``torch.nn.MultiheadAttention`` with its parameter names (``in_proj_weight``,
``in_proj_bias``, ``out_proj``), arguments, masks and returned weights."""

import math

from .. import _ember
from . import functional as F
from .layers import Linear
from .module import Module, Parameter


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads``, as PyTorch's module:
    inputs ``(L, N, E)`` (or ``(N, L, E)`` with ``batch_first``), a boolean ``attn_mask``
    where True means *not allowed* (a float one is added), a ``key_padding_mask`` ``(N, S)``
    where True marks padding. Returns ``(output, weights)``; the weights (averaged over heads
    unless ``average_attn_weights=False``) only when ``need_weights``. Keys and values of the
    query's width only (no ``kdim``/``vdim``)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False,
                 kdim=None, vdim=None, dtype=None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        if kdim not in (None, embed_dim) or vdim not in (None, embed_dim):
            raise ValueError("kdim/vdim other than embed_dim are not supported")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout {dropout} must be in [0, 1)")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.batch_first, self.head_dim = batch_first, embed_dim // num_heads
        # xavier_uniform_ on the packed projection, zero biases: torch's _reset_parameters.
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))
        self.in_proj_weight = Parameter(_ember.rand(3 * embed_dim, embed_dim) * (2 * bound) - bound)
        self.in_proj_bias = Parameter(_ember.zeros(3 * embed_dim)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias = Parameter(_ember.zeros(embed_dim))
        if dtype is not None:
            self.to(dtype)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, tgt, e = query.shape
        src = key.shape[1]
        w, b = self.in_proj_weight, self.in_proj_bias
        parts = [F.linear(x, w[i * e:(i + 1) * e], None if b is None else b[i * e:(i + 1) * e])
                 for i, x in enumerate((query, key, value))]
        q, k, v = (p.reshape(n, -1, self.num_heads, self.head_dim).transpose(1, 2) for p in parts)
        mask = None  # additive, (N or 1, H or 1, L, S)
        if attn_mask is not None:
            if attn_mask.dtype == _ember.bool:
                attn_mask = _ember.zeros(*attn_mask.shape).masked_fill(attn_mask, float("-inf"))
            mask = attn_mask.reshape(-1, self.num_heads, tgt, src) if attn_mask.dim() == 3 else attn_mask
        elif is_causal:
            causal = _ember.arange(src).reshape(1, src) > _ember.arange(tgt).reshape(tgt, 1)
            mask = _ember.zeros(tgt, src).masked_fill(causal, float("-inf"))
        if key_padding_mask is not None:
            pad = key_padding_mask
            if pad.dtype == _ember.bool:
                pad = _ember.zeros(*pad.shape).masked_fill(pad, float("-inf"))
            pad = pad.reshape(n, 1, 1, src)
            mask = pad if mask is None else mask + pad
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = q.matmul(k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)  # (N, H, L, S)
            weights = F.dropout(weights, p, self.training)
            out = weights.matmul(v)
            weights = weights.mean(1) if average_attn_weights else weights
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            weights = None
        out = self.out_proj(out.transpose(1, 2).reshape(n, tgt, e))
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
