"""``ember.checkpoint(fn, x)`` as ``torch.utils.checkpoint.checkpoint``: the gradients equal a
run without checkpointing bit for bit, dropout included (its masks are replayed), the
function runs again in the backward, and its errors come back as exceptions."""

import pytest

import ember
import ember.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x).relu()))


def grads(use_checkpoint, calls):
    ember.manual_seed(0)
    block = Block()
    x = ember.randn(4, 8, requires_grad=True)

    def f(h):
        calls.append(1)
        return block(h)

    y = ember.checkpoint(f, x) if use_checkpoint else f(x)
    (y * y).sum().backward()
    return [p.grad.tolist() for p in block.parameters()] + [x.grad.tolist()]


def test_checkpoint_gives_the_same_gradients_with_dropout():
    plain_calls, ckpt_calls = [], []
    assert grads(True, ckpt_calls) == grads(False, plain_calls)
    assert (len(plain_calls), len(ckpt_calls)) == (1, 2)  # recomputed in the backward


def test_checkpoint_errors_are_exceptions():
    x = ember.randn(2, 3, requires_grad=True)
    with pytest.raises(Exception, match="must return an ember.Tensor"):
        ember.checkpoint(lambda h: 3, x)
    with pytest.raises(Exception, match="boom"):
        ember.checkpoint(lambda h: (_ for _ in ()).throw(ValueError("boom")), x)
    state = {"first": True}

    def fails_on_replay(h):
        if state.pop("first", False):
            return h * 2.0
        raise RuntimeError("replay failed")

    y = ember.checkpoint(fails_on_replay, x)
    with pytest.raises(Exception, match="replay failed"):
        y.sum().backward()
