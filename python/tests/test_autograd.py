"""Autograd from Python: `.grad` on leaves, accumulation, `retain_graph`, `no_grad`,
`enable_grad`, `requires_grad_`, `detach`, and `autocast` (against torch's recorded dtypes)."""

import numpy as np
import pytest

import ember


def test_backward_fills_grad_and_accumulates():
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = ember.tensor([0.5, -1.0, 2.0], requires_grad=True)
    assert x.is_leaf and x.grad is None
    loss = (x * w).sum()
    loss.backward()
    assert x.grad.tolist() == [0.5, -1.0, 2.0] and w.grad.tolist() == [1.0, 2.0, 3.0]
    (x * w).sum().backward()
    assert x.grad.tolist() == [1.0, -2.0, 4.0]  # accumulated, as PyTorch
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0]


def test_non_scalar_backward_and_retain_graph():
    x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x.exp()
    y.backward(ember.ones(2, 2), retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward(ember.ones(2, 2))
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError):
        y.backward(ember.ones(2, 2))  # the graph was freed
    with pytest.raises(RuntimeError, match="single element"):
        ember.ones(2, requires_grad=True).exp().backward()


def test_no_grad_enable_grad_and_detach():
    x = ember.ones(3, requires_grad=True)
    with ember.no_grad():
        assert not ember.is_grad_enabled()
        y = x * 2
        with ember.enable_grad():
            z = x * 2
    assert ember.is_grad_enabled()
    assert not y.requires_grad and z.requires_grad
    assert not x.detach().requires_grad
    t = ember.ones(2)
    assert t.requires_grad_() is t and t.requires_grad and t.is_leaf
    (t * 3).sum().backward()
    assert t.grad.tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError):
        (t * 2).requires_grad_(False)


def test_autocast_runs_products_in_bf16_and_keeps_f32_losses():
    a = ember.randn(4, 8, requires_grad=True)
    w = ember.randn(8, 3, requires_grad=True)
    with ember.autocast("cpu", dtype=ember.bfloat16):
        y = a @ w
        loss = y.float().sum()
    assert y.dtype == ember.bfloat16
    loss.backward()
    assert a.grad.dtype == ember.float32 and w.grad.dtype == ember.float32
    with pytest.raises(ValueError):
        ember.autocast("tpu")
