"""``ember.nn.Block``: the configurable transformer block of the Rust API (``ember_nn::Block``)
with its names: ``input_layernorm``, ``self_attn`` (``q_proj``, ``k_proj``, ``v_proj``,
``o_proj``; grouped-query heads), ``post_attention_layernorm``, ``mlp`` (``fc1``/``fc2`` or
``gate_proj``/``up_proj``/``down_proj``). ``Block.llama``, ``Block.gpt`` and ``Block.bert``
give the three usual shapes."""

from . import functional as F
from .layers import Dropout, LayerNorm, Linear, RMSNorm
from .module import Module

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": lambda x: x.silu(),
    "relu": lambda x: x.relu(),
}


class SelfAttention(Module):
    """Multi-head self-attention with ``num_kv_heads`` key/value heads (grouped-query)."""

    def __init__(self, dim, num_heads, num_kv_heads=None, qkv_bias=True, o_bias=True,
                 causal=False, dropout=0.0):
        super().__init__()
        kv = num_kv_heads or num_heads
        if dim % num_heads or num_heads % kv:
            raise ValueError(f"dim {dim}, {num_heads} heads and {kv} kv heads do not divide")
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, kv, dim // num_heads
        self.causal, self.dropout = causal, dropout
        self.q_proj = Linear(dim, dim, bias=qkv_bias)
        self.k_proj = Linear(dim, kv * self.head_dim, bias=qkv_bias)
        self.v_proj = Linear(dim, kv * self.head_dim, bias=qkv_bias)
        self.o_proj = Linear(dim, dim, bias=o_bias)

    def forward(self, x, attention_mask=None):
        b, t, c = x.shape

        def heads(y, n):
            return y.reshape(b, t, n, self.head_dim).transpose(1, 2)  # (B, n, T, hd)

        q = heads(self.q_proj(x), self.num_heads)
        k = heads(self.k_proj(x), self.num_kv_heads)
        v = heads(self.v_proj(x), self.num_kv_heads)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=p,
                                           is_causal=self.causal)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, c))


class Mlp(Module):
    """``fc2(act(fc1(x)))``, or gated: ``down_proj(act(gate_proj(x)) · up_proj(x))``."""

    def __init__(self, dim, hidden, gated, activation, bias):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(_ACTIVATIONS)}")
        self.gated, self.activation = gated, activation
        if gated:
            self.gate_proj = Linear(dim, hidden, bias=bias)
            self.up_proj = Linear(dim, hidden, bias=bias)
            self.down_proj = Linear(hidden, dim, bias=bias)
        else:
            self.fc1 = Linear(dim, hidden, bias=bias)
            self.fc2 = Linear(hidden, dim, bias=bias)

    def forward(self, x):
        act = _ACTIVATIONS[self.activation]
        if self.gated:
            return self.down_proj(act(self.gate_proj(x)) * self.up_proj(x))
        return self.fc2(act(self.fc1(x)))


class Block(Module):
    """A transformer block: norms before each sublayer (``pre_norm``, GPT-2 and Llama) or after
    each residual add (BERT), LayerNorm or RMSNorm, a plain or gated MLP, dropout on the
    attention probabilities and on each residual branch (active in training mode). No rotary
    embeddings here (the Rust block has them)."""

    def __init__(self, dim, num_heads, hidden, *, num_kv_heads=None, norm="layer", eps=1e-5,
                 norm_bias=True, mlp="plain", activation="gelu", mlp_bias=True, qkv_bias=True,
                 o_bias=True, pre_norm=True, causal=False, attn_dropout=0.0, resid_dropout=0.0):
        super().__init__()
        if norm not in ("layer", "rms") or mlp not in ("plain", "gated"):
            raise ValueError(f"norm {norm!r} must be 'layer' or 'rms', mlp {mlp!r} 'plain' or 'gated'")

        def make_norm():
            if norm == "rms":
                return RMSNorm(dim, eps=eps)
            return LayerNorm(dim, eps=eps, bias=norm_bias)

        self.pre_norm = pre_norm
        self.input_layernorm = make_norm()
        self.self_attn = SelfAttention(dim, num_heads, num_kv_heads, qkv_bias, o_bias, causal,
                                       attn_dropout)
        self.post_attention_layernorm = make_norm()
        self.mlp = Mlp(dim, hidden, mlp == "gated", activation, mlp_bias)
        self.resid_dropout = Dropout(resid_dropout)

    @classmethod
    def llama(cls, dim, num_heads, hidden, num_kv_heads=None, eps=1e-6):
        """RMSNorm before each sublayer, SwiGLU, no biases, causal, no dropout."""
        return cls(dim, num_heads, hidden, num_kv_heads=num_kv_heads, norm="rms", eps=eps,
                   mlp="gated", activation="silu", mlp_bias=False, qkv_bias=False, o_bias=False,
                   causal=True)

    @classmethod
    def gpt(cls, dim, num_heads, hidden, dropout=0.0):
        """LayerNorm before each sublayer, GELU (tanh) MLP with biases, causal, dropout."""
        return cls(dim, num_heads, hidden, activation="gelu_tanh", causal=True,
                   attn_dropout=dropout, resid_dropout=dropout)

    @classmethod
    def bert(cls, dim, num_heads, hidden, dropout=0.0):
        """LayerNorm after each residual add, GELU MLP with biases, dropout."""
        return cls(dim, num_heads, hidden, eps=1e-12, pre_norm=False, attn_dropout=dropout,
                   resid_dropout=dropout)

    def forward(self, x, attention_mask=None):
        drop = self.resid_dropout
        if self.pre_norm:
            x = x + drop(self.self_attn(self.input_layernorm(x), attention_mask))
            return x + drop(self.mlp(self.post_attention_layernorm(x)))
        x = self.input_layernorm(x + drop(self.self_attn(x, attention_mask)))
        return self.post_attention_layernorm(x + drop(self.mlp(x)))

