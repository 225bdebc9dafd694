"""``ember.nn`` and ``ember.optim`` as a PyTorch user writes them: modules registered by
attribute, names and state dicts, train/eval, dtype moves; layers against their formulas;
SGD and AdamW steps against NumPy written from PyTorch's update rules; a small model trains."""

import math

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 4, bias=False)
        self.drop = nn.Dropout(0.5)
        self.scale = 2.0  # a plain attribute

    def forward(self, x):
        return self.out(self.drop(F.gelu(self.fc(self.ln(x)))))


def test_modules_register_parameters_by_attribute():
    m = nn.Sequential(Block(), nn.ReLU())
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.ln.weight", "0.ln.bias", "0.fc.weight", "0.fc.bias", "0.out.weight"]
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in m.parameters())
    assert list(m.state_dict()) == names
    assert m[0].scale == 2.0 and m[0].fc.weight.shape == (16, 8)
    m.eval()
    assert not m[0].drop.training
    m.train()
    assert m[0].drop.training
    assert "Linear(in_features=8, out_features=16, bias=True)" in repr(m)


def test_state_dict_round_trip_and_strictness():
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.tolist() == q.tolist(), n
    with pytest.raises(KeyError):
        b.load_state_dict({"fc.weight": a.fc.weight})
    missing, unexpected = b.load_state_dict({"fc.weight": a.fc.weight, "x": a.fc.bias}, strict=False)
    assert "fc.bias" in missing and unexpected == ["x"]
    with pytest.raises(ValueError, match="shape"):
        b.load_state_dict({**a.state_dict(), "fc.weight": ember.zeros(3, 3)})


def test_layers_match_their_formulas():
    x = ember.randn(5, 8)
    lin = nn.Linear(8, 3)
    want = x.numpy() @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), want, rtol=1e-5, atol=1e-5)
    ln = nn.LayerNorm(8)
    xs = x.numpy()
    norm = (xs - xs.mean(-1, keepdims=True)) / np.sqrt(xs.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(x).numpy(), norm, rtol=1e-4, atol=1e-5)
    emb = nn.Embedding(10, 4)
    ids = ember.tensor([[3, 1], [0, 9]])
    assert np.array_equal(emb(ids).numpy(), emb.weight.numpy()[[[3, 1], [0, 9]]])
    logits = ember.randn(6, 5)
    target = ember.tensor([0, 4, 2, 1, 3, 3])
    lp = logits.numpy() - np.log(np.exp(logits.numpy()).sum(-1, keepdims=True))
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(),
                               -lp[np.arange(6), target.numpy()].mean(), rtol=1e-5)
    assert nn.Dropout(0.5).eval()(x).tolist() == x.tolist()


def test_to_dtype_keeps_parameters_trainable():
    m = Block().to(ember.bfloat16)
    assert all(p.dtype == ember.bfloat16 and p.requires_grad and p.is_leaf for p in m.parameters())


def test_sgd_with_momentum_follows_pytorchs_rule():
    w = nn.Parameter(ember.tensor([1.0, -2.0, 3.0]))
    opt = ember.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    ref, buf = np.array([1.0, -2.0, 3.0]), None
    for _ in range(3):
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
        d = 2 * ref + 0.01 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - 0.1 * buf
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5)


def test_adamw_follows_pytorchs_rule():
    w = nn.Parameter(ember.tensor([0.5, -1.5, 2.0, 0.0]))
    opt = ember.optim.AdamW([w], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ref = np.array([0.5, -1.5, 2.0, 0.0])
    m = v = np.zeros(4)
    for t in range(1, 6):
        opt.zero_grad()
        (w.square() * ember.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
        g = 2 * ref * np.array([1.0, 2.0, 3.0, 4.0])
        opt.step()
        ref = ref * (1 - 0.01 * 0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.95 * v + 0.05 * g * g
        mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.95 ** t)
        ref = ref - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert w.is_leaf and w.requires_grad and w.grad is not None


def test_a_small_model_trains_and_clipping_bounds_the_norm():
    ember.manual_seed(0)
    x = ember.randn(64, 8)
    y = (x.sum(dim=1, keepdim=True) > 0).float()
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 1))
    opt = ember.optim.AdamW(model.parameters(), lr=0.05)
    sched = ember.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    first = None
    for _ in range(100):
        loss = F.mse_loss(model(x).sigmoid(), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        assert math.isfinite(norm.item())
        opt.step()
        sched.step()
    assert loss.item() < 0.25 * first
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    total = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in model.parameters()))
    assert total <= 1.0 + 1e-4
