"""PyTorch's values for every op of the fixtures (446 cases of 134 ops, 327 with gradients),
forward and gradients, replayed through the Python API as a PyTorch user calls each op, with
the Rust suite's tolerances;
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


DTYPES = {"f32": ember.float32, "f64": ember.float64, "f16": ember.float16,
          "bf16": ember.bfloat16, "i64": ember.int64, "bool": ember.bool}


def index_item(v):
    if v == "new":
        return None
    if v == "...":
        return Ellipsis
    if isinstance(v, list):
        return slice(v[0], v[1], v[2])
    return v


def in_place(x, method, *args):
    t = x[0].clone() if x[0].requires_grad else x[0].detach().clone()
    getattr(t, method)(*args)
    return t


def run(op, x, a):
    """One fixture op through the Python API as a PyTorch user writes it; a list of outputs."""
    F = ember.nn.functional
    if op in REDUCE:
        return [getattr(x[0], op)(dim=tuple(a["dims"]), keepdim=a["keepdim"])]
    if op in TABLE:
        return [getattr(x[0], op)(*x[1:])]
    if op in SCALAR:
        scalar = a["scalar"] if "scalar" in a else a["exponent"]
        return [getattr(x[0], SCALAR[op])(scalar)]
    ce = dict(reduction=a.get("reduction", "mean"), label_smoothing=a.get("smoothing", 0.0))
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
        "flip": lambda: x[0].flip(a["dims"]),
        "cumsum": lambda: x[0].cumsum(a["dim"]),
        "cumprod": lambda: x[0].cumprod(a["dim"]),
        "std": lambda: x[0].std(tuple(a["dims"]), correction=a["correction"], keepdim=a["keepdim"]),
        "var": lambda: x[0].var(tuple(a["dims"]), correction=a["correction"], keepdim=a["keepdim"]),
        "lerp": lambda: x[0].lerp(x[1], x[2]),
        "outer": lambda: x[0].outer(x[1]),
        "maximum": lambda: x[0].maximum(x[1]),
        "minimum": lambda: x[0].minimum(x[1]),
        "where": lambda: ember.where(x[0], x[1], x[2]),
        "where_scalar": lambda: ember.where(
            x[0], x[1] if a["true"] is None else a["true"], x[1] if a["false"] is None else a["false"]),
        "logsumexp": lambda: x[0].logsumexp(tuple(a["dims"]), a["keepdim"]),
        "layer_norm": lambda: F.layer_norm(x[0], [x[0].shape[-1]], x[1], x[2], a["eps"]),
        "rms_norm": lambda: F.rms_norm(x[0], [x[0].shape[-1]], x[1], a["eps"]),
        "cross_entropy": lambda: F.cross_entropy(x[0], x[1], **ce),
        "linear_cross_entropy": lambda: F.cross_entropy(F.linear(x[0], x[1]), x[2], **ce),
        "silu_mul": lambda: F.silu(x[0]) * x[1],
        "scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(
            x[0], x[1], x[2], attn_mask=x[3] if len(x) > 3 else None,
            is_causal=a.get("causal", False), scale=a.get("scale")),
        "expand": lambda: x[0].expand(*a["shape"]),
        "broadcast_to": lambda: x[0].broadcast_to(a["shape"]),
        "slice": lambda: x[0][(slice(None),) * (a["dim"] % x[0].dim())
                             + (slice(a["start"], a["end"], a["step"]),)],
        "cat": lambda: ember.cat(x, a["dim"]),
        "stack": lambda: ember.stack(x, a["dim"]),
        "index_select": lambda: x[0].index_select(a["dim"], x[1]),
        "gather": lambda: x[0].gather(a["dim"], x[1]),
        "scatter_add": lambda: x[0].scatter_add(a["dim"], x[1], x[2]),
        "embedding": lambda: F.embedding(x[1], x[0]),
        "tril": lambda: x[0].tril(a["diagonal"]),
        "triu": lambda: x[0].triu(a["diagonal"]),
        "to_dtype": lambda: x[0].to(DTYPES[a["to"]]),
        "arange": lambda: ember.arange(a["start"], a["end"], a["step"]),
        "eye": lambda: ember.eye(a["n"]),
        "prod": lambda: x[0].prod(tuple(a["dims"]), a["keepdim"]),
        "argsort": lambda: x[0].argsort(a["dim"], a["descending"]),
        "einsum": lambda: ember.einsum(a["equation"], *x),
        "one_hot": lambda: F.one_hot(x[0], a["num_classes"]),
        "pad": lambda: F.pad(x[0], a["pads"], a["mode"], a.get("value")),
        "repeat": lambda: x[0].repeat(*a["sizes"]),
        "tile": lambda: x[0].tile(a["reps"]),
        "roll": lambda: x[0].roll(tuple(a["shifts"]), tuple(a["dims"])),
        "diagonal": lambda: x[0].diagonal(a["offset"], a["dim1"], a["dim2"]),
        "any": lambda: x[0].any(tuple(a["dims"]), a["keepdim"]),
        "all": lambda: x[0].all(tuple(a["dims"]), a["keepdim"]),
        "logical_and": lambda: x[0].logical_and(x[1]),
        "logical_or": lambda: x[0].logical_or(x[1]),
        "logical_xor": lambda: x[0].logical_xor(x[1]),
        "logical_not": lambda: x[0].logical_not(),
        "norm": lambda: x[0].norm(float(a["p"]), tuple(a["dims"]), a["keepdim"]),
        "baddbmm": lambda: x[0].baddbmm(x[1], x[2], beta=a["beta"], alpha=a["alpha"]),
        "masked_select": lambda: x[0].masked_select(x[1]),
        "nonzero": lambda: x[0].nonzero(),
        "conv1d": lambda: F.conv1d(x[0], x[1], x[2] if len(x) > 2 else None, a["stride"],
                                   a["padding"], a["dilation"], a["groups"]),
        "conv2d": lambda: F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, a["stride"],
                                   a["padding"], a["dilation"], a["groups"]),
        "max_pool1d": lambda: F.max_pool1d(x[0], a["kernel"], a["stride"], a["padding"], a.get("dilation", 1)),
        "max_pool2d": lambda: F.max_pool2d(x[0], a["kernel"], a["stride"], a["padding"], a.get("dilation", 1)),
        "avg_pool1d": lambda: F.avg_pool1d(x[0], a["kernel"], a["stride"], a["padding"], a["count_include_pad"]),
        "avg_pool2d": lambda: F.avg_pool2d(x[0], a["kernel"], a["stride"], a["padding"], a["count_include_pad"]),
        "adaptive_avg_pool1d": lambda: F.adaptive_avg_pool1d(x[0], a["out"]),
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x[0], a["out"]),
        "adaptive_max_pool1d": lambda: F.adaptive_max_pool1d(x[0], a["out"][0]),
        "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(x[0], tuple(a["out"])),
        "index": lambda: x[0][tuple(index_item(v) for v in a["index"])],
        "add_": lambda: in_place(x, "add_", x[1]),
        "sub_": lambda: in_place(x, "sub_", x[1]),
        "mul_": lambda: in_place(x, "mul_", x[1]),
        "div_": lambda: in_place(x, "div_", x[1]),
        "copy_": lambda: in_place(x, "copy_", x[1]),
        "fill_": lambda: in_place(x, "fill_", a["value"]),
    }
    multi = {
        "split": lambda: list(x[0].split(a["size"], a["dim"])),
        "chunk": lambda: list(x[0].chunk(a["chunks"], a["dim"])),
        "sort": lambda: list(x[0].sort(a["dim"], a["descending"])),
        "topk": lambda: list(x[0].topk(a["k"], a["dim"], a["largest"])),
    }
    if op in multi:
        return multi[op]()
    return [others[op]()]


def bound(op):
    return True


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
