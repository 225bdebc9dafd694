"""PyTorch's values for every op of Ember's op tables (and the few other ops bound so far),
forward and gradients, replayed through the Python API with the Rust suite's tolerances;
and the coverage check: every table op is a method, a module function and has fixture cases."""

import numpy as np
import pytest

import ember
from _fixtures import as_numpy, close, load, ops_fixtures

CASES, TENSORS = ops_fixtures()
SCALAR = dict(ember._ember.scalar_ops())  # add_scalar -> add, powf -> pow, ...
TABLE = set(ember.TABLE_OPS)
REDUCE = {name for kind, name in ember._ember.table_ops() if kind == "reduce"}


def apply_view(t, view):
    if not view:
        return t
    if view[0] == "transpose":
        return t.transpose(view[1], view[2])
    if view[0] == "narrow":
        return t.narrow(view[1], view[2], view[3])
    raise AssertionError(f"unknown view {view}")


def run(op, x, a):
    """One fixture op through the Python API; a list of outputs."""
    if op in REDUCE:
        return [getattr(x[0], op)(dim=tuple(a["dims"]), keepdim=a["keepdim"])]
    if op in TABLE:
        return [getattr(x[0], op)(*x[1:])]
    if op in SCALAR:
        scalar = a["scalar"] if "scalar" in a else a["exponent"]
        return [getattr(x[0], SCALAR[op])(scalar)]
    others = {
        "matmul": lambda: x[0] @ x[1],
        "softmax": lambda: x[0].softmax(a["dim"]),
        "log_softmax": lambda: x[0].log_softmax(a["dim"]),
        "reshape": lambda: x[0].reshape(a["shape"]),
        "transpose": lambda: x[0].transpose(a["d0"], a["d1"]),
        "permute": lambda: x[0].permute(a["axes"]),
        "square": lambda: x[0].square(),
        "clamp": lambda: x[0].clamp(a.get("min"), a.get("max")),
        "unsqueeze": lambda: x[0].unsqueeze(a["dim"]),
        "squeeze": lambda: x[0].squeeze(a.get("dim")),
        "flatten": lambda: x[0].flatten(a["start"], a["end"]),
        "narrow": lambda: x[0].narrow(a["dim"], a["start"], a["len"]),
        "masked_fill": lambda: x[0].masked_fill(x[1], a["value"]),
        "argmax": lambda: x[0].argmax(a["dim"], a["keepdim"]),
        "argmin": lambda: x[0].argmin(a["dim"], a["keepdim"]),
    }
    return [others[op]()]


def bound(op):
    return op in TABLE or op in SCALAR or op in {
        "matmul", "softmax", "log_softmax", "reshape", "transpose", "permute", "square"}


SELECTED = [c for c in CASES if bound(c["op"])]


def test_every_table_op_is_bound_and_covered():
    covered = {c["op"] for c in CASES}
    for name in ember.TABLE_OPS:
        assert hasattr(ember, name), f"ember.{name} is missing"
        assert callable(getattr(ember.ones(2), name)), f"Tensor.{name} is missing"
        assert name in covered, f"table op {name} has no PyTorch fixture case"
    for scalar_name in SCALAR:
        if scalar_name not in TABLE:
            assert scalar_name in covered, f"{scalar_name} has no PyTorch fixture case"


@pytest.mark.parametrize("case", SELECTED, ids=[c["name"] for c in SELECTED])
def test_forward_matches_pytorch(case):
    name = case["name"]
    x = [apply_view(load(TENSORS, f"{name}/in{k}"), case["views"][k]) for k in range(case["n_in"])]
    outs = run(case["op"], x, case["args"])
    assert len(outs) == case["n_out"]
    for j, out in enumerate(outs):
        theirs, _ = TENSORS[f"{name}/out{j}"]
        msg = close(as_numpy(out), theirs, case["rtol"], case["atol"])
        assert msg is None, f"{name} output {j}: {msg}"


GRAD = [c for c in SELECTED if c["grad_inputs"]]


@pytest.mark.parametrize("case", GRAD, ids=[c["name"] for c in GRAD])
def test_gradients_match_pytorch(case):
    name = case["name"]
    leaves = [load(TENSORS, f"{name}/in{k}", requires_grad=k in case["grad_inputs"])
              for k in range(case["n_in"])]
    x = [apply_view(t, case["views"][k]) for k, t in enumerate(leaves)]
    outs = run(case["op"], x, case["args"])
    total = None
    for j, out in enumerate(outs):
        if not out.dtype.is_floating_point:
            continue
        term = (out * load(TENSORS, f"{name}/gout{j}")).sum()
        total = term if total is None else total + term
    total.backward()
    rtol, atol = 2 * case["rtol"], 2 * case["atol"]
    for k in case["grad_inputs"]:
        theirs, _ = TENSORS[f"{name}/gin{k}"]
        g = leaves[k].grad
        ours = np.zeros_like(theirs) if g is None else as_numpy(g)
        msg = close(ours, theirs, rtol, atol)
        assert msg is None, f"{name} gradient of input {k}: {msg}"
