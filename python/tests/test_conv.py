"""Convolution and pooling from Python against torch: ``ember.nn.Conv1d/2d`` and the pooling
layers give torch's outputs and gradients for the same weights (strides, padding, dilation,
groups), a small CNN trains, and bad arguments are exceptions."""

import os

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

if os.environ.get("EMBER_REQUIRE_VENV") == "1":
    import torch  # CI's venv has it: a failure there, not a skip
else:
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")


def both(a):
    """An Ember leaf and a torch leaf holding the same float64 values (as float32)."""
    a = np.asarray(a, dtype=np.float32)
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def close(e, t, tol=1e-5):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dims,kw", [
    (1, dict(stride=2, padding=1)),
    (1, dict(dilation=2, groups=2)),
    (2, dict(stride=(2, 1), padding=(1, 2))),
    (2, dict(dilation=2, groups=2, padding=1)),
])
def test_conv_forward_and_gradients_equal_torch(dims, kw):
    rng = np.random.default_rng(dims)
    spatial = (9,) if dims == 1 else (8, 7)
    kernel = (3,) if dims == 1 else (3, 2)
    x, tx = both(rng.standard_normal((2, 4, *spatial)))
    w, tw = both(rng.standard_normal((6, 4 // kw.get("groups", 1), *kernel)))
    b, tb = both(rng.standard_normal(6))
    ef, tf = (F.conv1d, torch.nn.functional.conv1d) if dims == 1 else (F.conv2d, torch.nn.functional.conv2d)
    y, ty = ef(x, w, b, **kw), tf(tx, tw, tb, **kw)
    close(y, ty)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    (y * ember.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()
    for e, t in [(x, tx), (w, tw), (b, tb)]:
        close(e.grad, t.grad, 1e-4)


@pytest.mark.parametrize("name,args,kw", [
    ("max_pool1d", (3,), dict(stride=2, padding=1)),
    ("max_pool2d", ((2, 3),), dict(stride=(2, 1), dilation=(1, 2))),
    ("avg_pool1d", (2,), dict()),
    ("avg_pool2d", (3,), dict(stride=2, padding=1, count_include_pad=False)),
    ("adaptive_avg_pool1d", (4,), dict()),
    ("adaptive_avg_pool2d", ((3, 2),), dict()),
])
def test_pooling_equals_torch(name, args, kw):
    rng = np.random.default_rng(7)
    shape = (2, 3, 11) if name.endswith("1d") else (2, 3, 8, 9)
    x, tx = both(rng.standard_normal(shape))
    y = getattr(F, name)(x, *args, **kw)
    ty = getattr(torch.nn.functional, name)(tx, *args, **kw)
    close(y, ty)
    y.sum().backward()
    ty.sum().backward()
    close(x.grad, tx.grad)


def test_layers_have_torchs_parameters_and_train():
    conv = nn.Conv2d(1, 4, 3, padding=1)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (4, 1, 3, 3)
    assert float(conv.weight.abs().max()) <= 1 / 3  # ±1/√fan_in, fan_in = 9
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    opt = ember.optim.AdamW(model.parameters(), lr=1e-2)
    x = ember.randn(8, 1, 8, 8)
    y = ember.tensor([0, 1] * 4)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2, losses


@pytest.mark.parametrize("call", [
    lambda: F.conv2d(ember.randn(1, 2, 5, 5), ember.randn(3, 2, 3, 3), padding="same"),
    lambda: F.conv2d(ember.randn(1, 2, 5, 5), ember.randn(3, 2, 3, 3), stride=0),
    lambda: F.conv2d(ember.randn(1, 2, 5, 5), ember.randn(3, 2, 3, 3), stride=(1, 2, 3)),
    lambda: F.conv1d(ember.randn(1, 2, 5), ember.randn(3, 5, 3)),
    lambda: F.max_pool2d(ember.randn(1, 2, 5, 5), -1),
    lambda: F.max_pool2d(ember.randn(1, 2, 5, 5), 9),
    lambda: nn.Conv2d(3, 4, 3, groups=2),
])
def test_bad_conv_and_pool_arguments_are_exceptions(call):
    with pytest.raises((ValueError, TypeError)):
        call()
