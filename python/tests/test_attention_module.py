"""``ember.nn.MultiheadAttention`` against ``torch.nn.MultiheadAttention`` with the same weights:
outputs, returned weights and input gradients for self- and cross-attention, batch-first or
not, boolean and float masks, key padding, causal attention; the state_dict names match."""

import os

import numpy as np
import pytest

import ember
import ember.nn as nn

if os.environ.get("EMBER_REQUIRE_VENV") == "1":
    import torch
else:
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")


def pair(batch_first):
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    em = nn.MultiheadAttention(16, 4, batch_first=batch_first)
    em.eval()
    em.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return em, tm


def leaf(a):
    a = np.asarray(a, dtype=np.float32)
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


@pytest.mark.parametrize("case", ["self", "cross", "bool_mask", "float_mask", "padding",
                                  "causal", "per_head", "no_weights"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_equals_torch(case, batch_first):
    em, tm = pair(batch_first)
    rng = np.random.default_rng(3)
    n, lq, ls = 2, 5, 5 if case in ("self", "causal", "per_head") else 7
    shape = lambda l: (n, l, 16) if batch_first else (l, n, 16)  # noqa: E731
    q, tq = leaf(rng.standard_normal(shape(lq)))
    if case in ("self", "causal", "per_head"):
        (k, tk), (v, tv) = (q, tq), (q, tq)
    else:
        (k, tk), (v, tv) = leaf(rng.standard_normal(shape(ls))), leaf(rng.standard_normal(shape(ls)))
    kw, tkw = {}, {}
    if case == "bool_mask":
        m = rng.random((lq, ls)) < 0.3
        m[:, 0] = False
        kw["attn_mask"], tkw["attn_mask"] = ember.tensor(m), torch.tensor(m)
    if case == "float_mask":
        m = rng.standard_normal((lq, ls)).astype(np.float32)
        kw["attn_mask"], tkw["attn_mask"] = ember.tensor(m), torch.tensor(m)
    if case == "padding":
        m = np.zeros((n, ls), dtype=bool)
        m[1, 4:] = True
        kw["key_padding_mask"], tkw["key_padding_mask"] = ember.tensor(m), torch.tensor(m)
    if case == "causal":
        m = np.triu(np.ones((lq, ls), dtype=bool), 1)
        kw.update(is_causal=True)
        tkw.update(attn_mask=torch.tensor(m), is_causal=True)
    if case == "per_head":
        kw["average_attn_weights"] = tkw["average_attn_weights"] = False
    if case == "no_weights":
        kw["need_weights"] = tkw["need_weights"] = False
    out, w = em(q, k, v, **kw)
    tout, tw = tm(tq, tk, tv, **tkw)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    if tw is None:
        assert w is None
    else:
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(q.grad.numpy(), tq.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_state_dict_names_and_bad_arguments():
    em = nn.MultiheadAttention(8, 2)
    assert sorted(em.state_dict()) == sorted(torch.nn.MultiheadAttention(8, 2).state_dict())
    with pytest.raises(ValueError):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError):
        nn.MultiheadAttention(8, 2, kdim=4)
