"""Fits a line with Ember from Python: tensors, autograd and a hand-written SGD step.

    pip install ./python
    python python/examples/quickstart.py
"""

import ember

ember.manual_seed(0)
x = ember.randn(256, 1)
y = 3.0 * x - 0.5 + 0.1 * ember.randn(256, 1)  # the line to recover

w = ember.zeros(1, 1, requires_grad=True)
b = ember.zeros(1, requires_grad=True)
for step in range(200):
    loss = ((x @ w + b - y) ** 2).mean()
    w.grad = None
    b.grad = None
    loss.backward()
    with ember.no_grad():
        w = (w - 0.1 * w.grad).detach().requires_grad_()
        b = (b - 0.1 * b.grad).detach().requires_grad_()
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

print(f"w = {w.item():.3f} (true 3.0), b = {b.item():.3f} (true -0.5)")
assert abs(w.item() - 3.0) < 0.05 and abs(b.item() + 0.5) < 0.05
