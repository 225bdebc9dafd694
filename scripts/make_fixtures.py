#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for Ember's op tests.

Usage: python scripts/make_fixtures.py   (needs torch and safetensors; see scripts/setup_venv.sh)

Output:
  tests/fixtures/ops.safetensors  inputs and PyTorch's outputs, named "<case>/in<i>" and "<case>/out<j>"
  tests/fixtures/ops.json         one spec per case: op, args, views applied to inputs, tolerance

Each case names an Ember op (the Rust test dispatches on it). Inputs are random, seeded, small,
with odd sizes (1, 7, 33), broadcasting, negative dims, keepdim and non-contiguous views
(transposed or narrowed inputs: the base tensor is stored, the view is replayed on both sides).
"""
import json
import os

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

DT = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16,
      "i64": torch.int64, "bool": torch.bool}
TOL = {"f32": (1e-5, 1e-6), "f64": (1e-10, 1e-12), "f16": (1e-2, 1e-3), "bf16": (2e-2, 1e-2),
       "i64": (0, 0), "bool": (0, 0)}

tensors = {}
specs = []


def apply_view(t, view):
    if view is None:
        return t
    kind = view[0]
    if kind == "transpose":
        return t.transpose(view[1], view[2])
    if kind == "narrow":
        return t.narrow(view[1], view[2], view[3])
    raise ValueError(view)


# Ops without a derivative: their cases carry no gradients.
NOT_DIFFERENTIABLE = {"eq", "ne", "lt", "le", "gt", "ge", "eq_scalar", "ne_scalar", "lt_scalar",
                      "le_scalar", "gt_scalar", "ge_scalar", "argmax", "argmin", "arange", "eye",
                      "argsort", "one_hot", "any", "all", "logical_and", "logical_or",
                      "logical_xor", "logical_not", "nonzero", "add_", "sub_", "mul_", "div_",
                      "copy_", "fill_"}


def case(op, inputs, fn, args=None, views=None, dtype="f32", tol=None, name=None, const=()):
    """Records one case: `fn(*viewed_inputs)` is PyTorch's answer. For differentiable f32/f64
    cases it also records a random upstream gradient per output ("<case>/gout<j>") and
    PyTorch's gradient of every float input ("<case>/gin<i>")."""
    args = args or {}
    views = views or [None] * len(inputs)
    name = name or f"{op}_{len([s for s in specs if s['op'] == op])}"
    grad = dtype in ("f32", "f64") and op not in NOT_DIFFERENTIABLE
    leaves = [t.clone().requires_grad_(grad and t.is_floating_point() and i not in const)
              for i, t in enumerate(inputs)]
    viewed = [apply_view(t, v) for t, v in zip(leaves, views)]
    out = fn(*viewed)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    # Integer outputs (sort's indices) carry no gradient; the float ones do.
    grad = grad and any(o.is_floating_point() for o in outs) and any(t.requires_grad for t in leaves)
    for i, t in enumerate(inputs):
        tensors[f"{name}/in{i}"] = t.contiguous().clone()
    for j, t in enumerate(outs):
        tensors[f"{name}/out{j}"] = t.detach().contiguous().clone()
    grad_inputs = []
    if grad:
        floats = [(j, o) for j, o in enumerate(outs) if o.is_floating_point()]
        gouts = [torch.randn(o.shape, dtype=torch.float64).to(o.dtype) for _, o in floats]
        torch.autograd.backward([o for _, o in floats], gouts)
        for (j, _), g in zip(floats, gouts):
            tensors[f"{name}/gout{j}"] = g.contiguous()
        for i, t in enumerate(leaves):
            if t.requires_grad:
                g = t.grad if t.grad is not None else torch.zeros_like(t)
                tensors[f"{name}/gin{i}"] = g.contiguous().clone()
                grad_inputs.append(i)
    rtol, atol = tol or TOL[dtype]
    specs.append({"name": name, "op": op, "args": args, "views": views, "n_in": len(inputs),
                  "n_out": len(outs), "dtype": dtype, "rtol": rtol, "atol": atol,
                  "grad_inputs": grad_inputs})


def rn(*shape, dtype="f32"):
    return torch.randn(shape, dtype=torch.float64).to(DT[dtype])


def pos(*shape, dtype="f32"):
    return (torch.rand(shape, dtype=torch.float64) * 2 + 0.1).to(DT[dtype])


def ints(*shape, high=10):
    return torch.randint(-high, high, shape, dtype=torch.int64)


# ---------------------------------------------------------------- unary
UNARY = {
    "neg": (torch.neg, rn), "abs": (torch.abs, rn), "exp": (torch.exp, rn), "log": (torch.log, pos),
    "sqrt": (torch.sqrt, pos), "rsqrt": (torch.rsqrt, pos), "sin": (torch.sin, rn),
    "cos": (torch.cos, rn), "tanh": (torch.tanh, rn), "sigmoid": (torch.sigmoid, rn),
    "relu": (torch.relu, rn), "gelu": (torch.nn.functional.gelu, rn),
    "gelu_tanh": (lambda x: torch.nn.functional.gelu(x, approximate="tanh"), rn),
    "silu": (torch.nn.functional.silu, rn), "recip": (torch.reciprocal, pos),
    "square": (torch.square, rn), "erf": (torch.erf, rn),
    "floor": (torch.floor, rn), "ceil": (torch.ceil, rn), "trunc": (torch.trunc, rn),
    "round": (torch.round, rn), "sign": (torch.sign, rn),
}
for op, (fn, gen) in UNARY.items():
    case(op, [gen(7, 33)], fn)
    case(op, [gen(33, 7)], fn, views=[["transpose", 0, 1]])
    case(op, [gen(1)], fn)
for dt in ["f64", "f16", "bf16"]:
    for op in ["exp", "tanh", "sigmoid", "gelu", "sqrt", "neg"]:
        fn, gen = UNARY[op]
        case(op, [gen(7, 5, dtype=dt)], fn, dtype=dt, name=f"{op}_{dt}")
case("neg", [ints(7, 3)], torch.neg, dtype="i64")
case("abs", [ints(7, 3)], torch.abs, dtype="i64")
case("relu", [ints(7, 3)], torch.relu, dtype="i64")
for op in ["floor", "sign"]:
    case(op, [ints(7, 3)], UNARY[op][0], dtype="i64", name=f"{op}_i64")
# Halves round to even, as torch.round; zeros keep sign 0.
halves = torch.tensor([[-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.5]], dtype=torch.float32)
case("round", [halves], torch.round, name="round_halves")
case("sign", [halves], torch.sign, name="sign_zero")
case("powf", [pos(7, 33)], lambda x: torch.pow(x, 2.5), args={"exponent": 2.5})
case("powf", [rn(7, 33)], lambda x: torch.pow(x, 3.0), args={"exponent": 3.0})
case("powf", [pos(7, 33)], lambda x: torch.pow(x, -0.5), args={"exponent": -0.5})
case("clamp", [rn(7, 33)], lambda x: torch.clamp(x, -0.5, 0.7), args={"min": -0.5, "max": 0.7})
case("clamp", [rn(7, 33)], lambda x: torch.clamp(x, min=0.1), args={"min": 0.1})
case("clamp", [rn(7, 33)], lambda x: torch.clamp(x, max=0.1), args={"max": 0.1})
case("clamp", [ints(7, 3)], lambda x: torch.clamp(x, -3, 4), args={"min": -3, "max": 4}, dtype="i64")

case("flip", [rn(4, 5, 6)], lambda x: torch.flip(x, [0, 2]), args={"dims": [0, 2]})
case("flip", [rn(6, 5)], lambda x: torch.flip(x, [1]), args={"dims": [1]}, views=[["transpose", 0, 1]])
case("flip", [ints(3, 4)], lambda x: torch.flip(x, [-1]), args={"dims": [-1]}, dtype="i64")
case("cumsum", [rn(4, 7)], lambda x: torch.cumsum(x, 1), args={"dim": 1})
case("cumsum", [rn(3, 4, 5)], lambda x: torch.cumsum(x, 0), args={"dim": 0})
case("cumsum", [rn(7, 4)], lambda x: torch.cumsum(x, -1), args={"dim": -1}, views=[["transpose", 0, 1]])
case("cumsum", [ints(5, 3)], lambda x: torch.cumsum(x, 0), args={"dim": 0}, dtype="i64")

case("std", [rn(7, 33, 5)], lambda x: torch.std(x, dim=[0, 2], correction=1, keepdim=True),
     args={"dims": [0, 2], "correction": 1, "keepdim": True})
case("std", [rn(6, 4)], lambda x: torch.std(x, correction=0), args={"dims": [], "correction": 0, "keepdim": False})
case("lerp", [rn(4, 5), rn(4, 5), rn(5)], torch.lerp)
case("outer", [rn(6), rn(4)], torch.outer)

# ---------------------------------------------------------------- binary
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
          "maximum": torch.maximum, "minimum": torch.minimum}
SHAPES = [((7, 33), (7, 33)), ((7, 33), (33,)), ((4, 1, 7), (3, 1)), ((1,), (7, 33)),
          ((), (7, 5)), ((2, 3, 1, 5), (1, 4, 1))]
for op, fn in BINARY.items():
    for sa, sb in SHAPES:
        case(op, [rn(*sa), rn(*sb)], fn)
    case(op, [rn(33, 7), rn(7, 33)], fn, views=[["transpose", 0, 1], None])
    case(op, [rn(7, 33), rn(7, 9)], fn, views=[["narrow", 1, 3, 9], None])
for op in ["add", "sub", "mul", "maximum", "minimum"]:
    case(op, [ints(7, 3), ints(3)], BINARY[op], dtype="i64")
case("div", [ints(7, 3), torch.randint(1, 5, (3,))], torch.div, dtype="i64",
     tol=(1e-6, 1e-7), name="div_int_true_division")
case("add", [rn(7, 3), ints(3)], torch.add, name="add_promote_int_float")
for dt in ["f64", "f16", "bf16"]:
    for op in ["add", "mul", "div"]:
        case(op, [rn(7, 5, dtype=dt), rn(5, dtype=dt)], BINARY[op], dtype=dt, name=f"{op}_{dt}")
case("pow", [pos(7, 33), rn(33)], torch.pow)
case("pow", [pos(4, 1, 7), rn(3, 1)], torch.pow)
SCALAR = {"add_scalar": torch.add, "sub_scalar": torch.sub, "mul_scalar": torch.mul,
          "div_scalar": torch.div}
for op, fn in SCALAR.items():
    case(op, [rn(7, 33)], lambda x, fn=fn: fn(x, 1.75), args={"scalar": 1.75})
    case(op, [ints(7, 3)], lambda x, fn=fn: fn(x, 3), args={"scalar": 3}, dtype="i64",
         tol=(1e-6, 1e-7))
    case(op, [rn(33, 7)], lambda x, fn=fn: fn(x, -0.5), args={"scalar": -0.5},
         views=[["transpose", 0, 1]])

# ---------------------------------------------------------------- comparisons and selection
CMP = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
       "ge": torch.ge}
for op, fn in CMP.items():
    a = torch.randint(0, 3, (7, 33)).float()
    case(op, [a, torch.randint(0, 3, (33,)).float()], fn)
    case(op, [ints(7, 3, high=2), ints(7, 1, high=2)], fn, dtype="i64")
    case(op + "_scalar", [a], lambda x, fn=fn: fn(x, 1.0), args={"scalar": 1.0})
cond = torch.rand(7, 33) > 0.5
case("where", [cond, rn(7, 33), rn(7, 33)], torch.where)
case("where", [torch.rand(4, 1, 7) > 0.5, rn(3, 1), rn(7)], torch.where)
case("where", [torch.rand(7, 3) > 0.5, ints(7, 3), ints(3)], torch.where, dtype="i64")
case("masked_fill", [rn(7, 33), torch.rand(7, 33) > 0.5],
     lambda x, m: x.masked_fill(m, -1e9), args={"value": -1e9})
case("masked_fill", [rn(4, 7, 7), torch.rand(7, 7) > 0.5],
     lambda x, m: x.masked_fill(m, 0.25), args={"value": 0.25})

# ---------------------------------------------------------------- reductions
RED = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
       "logsumexp": torch.logsumexp}
for op, fn in RED.items():
    for dims, keep in [([-1], False), ([0], True), ([0, 2], False), ([1], True), ([], False)]:
        x = rn(7, 33, 5)
        if dims:
            ref = lambda x, fn=fn, d=dims, k=keep: fn(x, dim=d, keepdim=k)
        else:
            ref = lambda x, fn=fn: fn(x, dim=[0, 1, 2]) if fn is torch.logsumexp else fn(x)
        case(op, [x], ref, args={"dims": dims, "keepdim": keep})
    case(op, [rn(33, 7)], lambda x, fn=fn: fn(x, dim=[1], keepdim=False),
         args={"dims": [1], "keepdim": False}, views=[["transpose", 0, 1]])
for op in ["sum", "max", "min"]:
    case(op, [ints(7, 5)], lambda x, fn=RED[op]: fn(x, dim=[1]), args={"dims": [1], "keepdim": False},
         dtype="i64")
case("sum", [torch.rand(7, 5) > 0.5], lambda x: torch.sum(x, dim=[1]), dtype="bool",
     args={"dims": [1], "keepdim": False}, name="sum_bool_counts")
for dt in ["f64", "f16", "bf16"]:
    case("sum", [rn(7, 33, dtype=dt)], lambda x: torch.sum(x, dim=[-1]), dtype=dt,
         args={"dims": [-1], "keepdim": False}, name=f"sum_{dt}")
for op, fn in {"argmax": torch.argmax, "argmin": torch.argmin}.items():
    for dim, keep in [(-1, False), (0, True), (1, False)]:
        case(op, [rn(7, 33, 5)], lambda x, fn=fn, d=dim, k=keep: fn(x, dim=d, keepdim=k),
             args={"dim": dim, "keepdim": keep})
    case(op, [ints(7, 33, high=1000)], lambda x, fn=fn: fn(x, dim=1), args={"dim": 1, "keepdim": False},
         dtype="i64")
for dims, corr, keep in [([-1], 1, False), ([0, 1], 0, True), ([], 1, False)]:
    ref = (lambda x, d=dims, c=corr, k=keep: torch.var(x, dim=d if d else None, correction=c, keepdim=k))
    case("var", [rn(7, 33, 5)], ref, args={"dims": dims, "correction": corr, "keepdim": keep})
for op, fn in {"softmax": torch.softmax, "log_softmax": torch.log_softmax}.items():
    for dim in [-1, 0, 1]:
        case(op, [rn(7, 33, 5) * 5], lambda x, fn=fn, d=dim: fn(x, dim=d), args={"dim": dim})
    case(op, [rn(33, 7)], lambda x, fn=fn: fn(x, dim=-1), args={"dim": -1},
         views=[["transpose", 0, 1]])
    big = rn(4, 9) * 1000
    case(op, [big], lambda x, fn=fn: fn(x, dim=-1), args={"dim": -1}, name=f"{op}_large_logits")
    for dt in ["f64", "f16", "bf16"]:
        case(op, [rn(7, 33, dtype=dt)], lambda x, fn=fn: fn(x, dim=-1), args={"dim": -1}, dtype=dt,
             name=f"{op}_{dt}")

# ---------------------------------------------------------------- fused ops
FN = torch.nn.functional
case("layer_norm", [rn(2, 7, 33), 1 + 0.1 * rn(33), 0.1 * rn(33)],
     lambda x, w, b: FN.layer_norm(x, (33,), w, b, 1e-5), args={"eps": 1e-5})
case("layer_norm", [rn(33, 7), 1 + 0.1 * rn(33), 0.1 * rn(33)],
     lambda x, w, b: FN.layer_norm(x, (33,), w, b, 1e-5), args={"eps": 1e-5},
     views=[["transpose", 0, 1], None, None])
case("rms_norm", [rn(2, 7, 33), 1 + 0.1 * rn(33)],
     lambda x, w: FN.rms_norm(x, (33,), w, 1e-6), args={"eps": 1e-6})
tg = torch.randint(0, 33, (7,))
tg[3] = -100
case("cross_entropy", [rn(7, 33), tg], lambda x, t: FN.cross_entropy(x, t),
     args={"reduction": "mean", "smoothing": 0.0})
case("cross_entropy", [rn(7, 33), tg], lambda x, t: FN.cross_entropy(x, t, reduction="sum",
     label_smoothing=0.1), args={"reduction": "sum", "smoothing": 0.1})
case("cross_entropy", [rn(7, 33), tg], lambda x, t: FN.cross_entropy(x, t, reduction="none"),
     args={"reduction": "none", "smoothing": 0.0})
case("scaled_dot_product_attention", [rn(2, 4, 7, 8), rn(2, 2, 7, 8), rn(2, 2, 7, 5)],
     lambda q, k, v: FN.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
     args={"causal": True})
case("scaled_dot_product_attention", [rn(1, 2, 5, 8), rn(1, 2, 9, 8), rn(1, 2, 9, 8),
                                      0.5 * rn(1, 1, 5, 9)],
     lambda q, k, v, m: FN.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.2),
     args={"causal": False, "scale": 0.2}, const=(3,))

# ---------------------------------------------------------------- matmul
MM = [((7, 33), (33, 5)), ((33,), (33,)), ((33,), (33, 7)), ((7, 33), (33,)),
      ((3, 7, 33), (33, 5)), ((2, 1, 7, 4), (3, 4, 5)), ((1, 1), (1, 1)), ((5, 7, 3), (5, 3, 2))]
for sa, sb in MM:
    case("matmul", [rn(*sa), rn(*sb)], torch.matmul, tol=(1e-5, 1e-5))
case("matmul", [rn(33, 7), rn(5, 33)], torch.matmul, views=[["transpose", 0, 1], ["transpose", 0, 1]],
     tol=(1e-5, 1e-5))
for dt in ["f64", "f16", "bf16"]:
    case("matmul", [rn(7, 33, dtype=dt), rn(33, 5, dtype=dt)], torch.matmul, dtype=dt,
         name=f"matmul_{dt}", tol=None if dt == "f64" else (3e-2, 3e-2))

# ---------------------------------------------------------------- shape ops
x = rn(7, 33, 5)
case("reshape", [x], lambda x: x.reshape(33, -1), args={"shape": [33, -1]})
case("reshape", [rn(33, 7)], lambda x: x.reshape(-1), args={"shape": [-1]}, views=[["transpose", 0, 1]])
case("permute", [x], lambda x: x.permute(2, 0, 1), args={"axes": [2, 0, 1]})
case("permute", [x], lambda x: x.permute(-1, 1, 0), args={"axes": [-1, 1, 0]})
case("transpose", [x], lambda x: x.transpose(0, -1), args={"d0": 0, "d1": -1})
case("squeeze", [rn(7, 1, 5)], lambda x: x.squeeze(1), args={"dim": 1})
case("squeeze", [rn(7, 1, 5)], lambda x: x.squeeze(0), args={"dim": 0})
case("unsqueeze", [x], lambda x: x.unsqueeze(-1), args={"dim": -1})
case("unsqueeze", [x], lambda x: x.unsqueeze(1), args={"dim": 1})
case("flatten", [x], lambda x: x.flatten(1, 2), args={"start": 1, "end": 2})
case("flatten", [rn(2, 3, 4, 5)], lambda x: x.flatten(0, -2), args={"start": 0, "end": -2})
case("expand", [rn(7, 1)], lambda x: x.expand(3, -1, 5), args={"shape": [3, -1, 5]})
case("broadcast_to", [rn(1, 5)], lambda x: x.broadcast_to((2, 7, 5)), args={"shape": [2, 7, 5]})
case("narrow", [x], lambda x: x.narrow(1, 3, 20), args={"dim": 1, "start": 3, "len": 20})
case("narrow", [x], lambda x: x.narrow(-1, 4, 1), args={"dim": -1, "start": 4, "len": 1})
case("slice", [x], lambda x: x[:, 1:-1:3], args={"dim": 1, "start": 1, "end": -1, "step": 3})
case("slice", [x], lambda x: x[-3:], args={"dim": 0, "start": -3, "end": None, "step": 1})
case("slice", [x], lambda x: x[..., ::2], args={"dim": -1, "start": None, "end": None, "step": 2})
case("cat", [rn(7, 3), rn(7, 5), rn(7, 1)], lambda *t: torch.cat(t, dim=1), args={"dim": 1})
case("cat", [rn(2, 3), rn(4, 3)], lambda *t: torch.cat(t, dim=-2), args={"dim": -2})
case("cat", [ints(2, 3), ints(1, 3)], lambda *t: torch.cat(t, dim=0), args={"dim": 0}, dtype="i64")
case("cat", [rn(3, 7), rn(7, 2)], lambda *t: torch.cat(t, dim=1), args={"dim": 1},
     views=[["transpose", 0, 1], None])
case("stack", [rn(7, 3), rn(7, 3)], lambda *t: torch.stack(t, dim=1), args={"dim": 1})
case("stack", [rn(7, 3), rn(7, 3), rn(7, 3)], lambda *t: torch.stack(t, dim=-1), args={"dim": -1})
case("split", [rn(7, 33)], lambda x: x.split(10, dim=1), args={"size": 10, "dim": 1})
case("split", [rn(7, 33)], lambda x: x.split(3, dim=0), args={"size": 3, "dim": 0})
case("chunk", [rn(7, 33)], lambda x: x.chunk(3, dim=-1), args={"chunks": 3, "dim": -1})
case("chunk", [rn(7, 33)], lambda x: x.chunk(2, dim=0), args={"chunks": 2, "dim": 0})
idx = torch.tensor([4, 0, 6, 6, 1])
case("index_select", [rn(7, 33), idx], lambda x, i: x.index_select(0, i), args={"dim": 0})
case("index_select", [rn(33, 7), idx], lambda x, i: x.index_select(-1, i), args={"dim": -1},
     views=[["transpose", 0, 1], None])
case("index_select", [ints(7, 3), idx], lambda x, i: x.index_select(0, i), args={"dim": 0}, dtype="i64")
g = torch.randint(0, 5, (7, 4))
case("gather", [rn(7, 5), g], lambda x, i: x.gather(1, i), args={"dim": 1})
case("gather", [rn(9, 5), torch.randint(0, 9, (4, 3))], lambda x, i: x.gather(0, i), args={"dim": 0})
case("scatter_add", [rn(7, 5), g, rn(7, 4)], lambda x, i, s: x.scatter_add(1, i, s), args={"dim": 1})
case("scatter_add", [rn(5, 6), torch.randint(0, 5, (3, 4)), rn(3, 4)],
     lambda x, i, s: x.scatter_add(0, i, s), args={"dim": 0})
ids = torch.tensor([[1, 0, 6], [6, 2, 2]])
case("embedding", [rn(7, 33), ids], lambda w, i: torch.nn.functional.embedding(i, w))
case("tril", [rn(7, 33)], lambda x: x.tril(0), args={"diagonal": 0})
case("tril", [rn(2, 7, 7)], lambda x: x.tril(-1), args={"diagonal": -1})
case("triu", [rn(7, 33)], lambda x: x.triu(1), args={"diagonal": 1})
case("triu", [rn(2, 5, 7)], lambda x: x.triu(0), args={"diagonal": 0})

# ---------------------------------------------------------------- dtype conversion and creation
case("to_dtype", [rn(7, 5) * 3], lambda x: x.to(torch.int64), args={"to": "i64"})
case("to_dtype", [ints(7, 5)], lambda x: x.to(torch.float32), args={"to": "f32"}, dtype="i64")
case("to_dtype", [rn(7, 5)], lambda x: x.to(torch.float16), args={"to": "f16"}, tol=(1e-3, 1e-4))
case("to_dtype", [rn(7, 5)], lambda x: x.to(torch.bool), args={"to": "bool"})
case("to_dtype", [torch.rand(7, 5) > 0.5], lambda x: x.to(torch.float32), args={"to": "f32"},
     dtype="bool")
case("arange", [], lambda: torch.arange(-3.0, 4.0, 0.5), args={"start": -3.0, "end": 4.0, "step": 0.5})
case("arange", [], lambda: torch.arange(0, 7), args={"start": 0, "end": 7, "step": 1}, dtype="i64")
case("eye", [], lambda: torch.eye(5), args={"n": 5})


# ---------------------------------------------------------------- a PyTorch user's first week
F_ = torch.nn.functional
withzeros = rn(3, 6)
withzeros[0, 2] = 0.0
withzeros[1, 1] = 0.0
withzeros[1, 4] = 0.0
case("cumprod", [rn(4, 7)], lambda x: torch.cumprod(x, 1), args={"dim": 1})
case("cumprod", [withzeros], lambda x: torch.cumprod(x, 1), args={"dim": 1}, name="cumprod_zeros")
case("cumprod", [rn(6, 4)], lambda x: torch.cumprod(x, 0), args={"dim": 0}, views=[["transpose", 0, 1]])
case("cumprod", [ints(4, 5, high=3)], lambda x: torch.cumprod(x, 1), args={"dim": 1}, dtype="i64")
case("prod", [rn(5, 6)], lambda x: torch.prod(x, 1), args={"dims": [1], "keepdim": False})
case("prod", [withzeros], lambda x: x.prod(0, keepdim=True), args={"dims": [0], "keepdim": True},
     name="prod_zeros")
case("prod", [rn(2, 3, 2)], lambda x: torch.prod(x), args={"dims": [], "keepdim": False})
case("prod", [ints(3, 4, high=3)], lambda x: torch.prod(x, -1), args={"dims": [-1], "keepdim": False},
     dtype="i64")
for desc in (False, True):
    case("sort", [rn(5, 9)], lambda x, d=desc: torch.sort(x, stable=True, dim=-1, descending=d),
         args={"dim": -1, "descending": desc})
    case("argsort", [rn(7, 4)], lambda x, d=desc: torch.argsort(x, stable=True, dim=0, descending=d),
         args={"dim": 0, "descending": desc})
case("sort", [ints(4, 6)], lambda x: torch.sort(x, stable=True, dim=1), args={"dim": 1, "descending": False},
     dtype="i64")
nan_row = torch.tensor([[0.5, float("nan"), -1.0, 2.0, float("nan"), 0.0]])
case("argsort", [nan_row], lambda x: torch.argsort(x, stable=True, dim=1), args={"dim": 1, "descending": False},
     name="argsort_nan")
case("topk", [rn(4, 9)], lambda x: torch.topk(x, 3, -1), args={"k": 3, "dim": -1, "largest": True})
case("topk", [rn(8, 3)], lambda x: torch.topk(x, 2, 0, largest=False), args={"k": 2, "dim": 0, "largest": False})
for eq, shapes in [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
                   ("ij->ji", [(3, 4)]), ("ii->i", [(4, 4)]), ("ij->", [(3, 4)]),
                   ("i,j->ij", [(3,), (5,)]), ("...ij,...jk->...ik", [(2, 3, 4), (4, 2)]),
                   ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
                   ("ijk,ik->j", [(3, 4, 5), (3, 5)]), ("ij,ij->i", [(4, 5), (4, 5)])]:
    case("einsum", [rn(*s) for s in shapes], lambda *x, e=eq: torch.einsum(e, *x), args={"equation": eq},
         tol=(1e-5, 1e-5))
case("one_hot", [torch.tensor([[2, 0], [1, 4]])], lambda x: F_.one_hot(x, 6), args={"num_classes": 6},
     dtype="i64")
case("one_hot", [torch.tensor([3, 0, 1])], lambda x: F_.one_hot(x), args={"num_classes": -1}, dtype="i64")
for mode in ["constant", "reflect", "replicate", "circular"]:
    case("pad", [rn(2, 3, 5, 6)], lambda x, m=mode: F_.pad(x, (2, 1, 1, 3), mode=m),
         args={"pads": [2, 1, 1, 3], "mode": mode, "value": 0.0})
case("pad", [rn(3, 7)], lambda x: F_.pad(x, (1, -2), value=1.5), args={"pads": [1, -2], "mode": "constant",
     "value": 1.5})
case("pad", [ints(3, 4)], lambda x: F_.pad(x, (1, 1), value=7), args={"pads": [1, 1], "mode": "constant",
     "value": 7}, dtype="i64")
case("repeat", [rn(2, 3)], lambda x: x.repeat(2, 1, 3), args={"sizes": [2, 1, 3]})
case("repeat", [rn(3, 2)], lambda x: x.repeat(2, 2), args={"sizes": [2, 2]}, views=[["transpose", 0, 1]])
case("tile", [rn(2, 3)], lambda x: torch.tile(x, (2,)), args={"reps": [2]})
case("roll", [rn(4, 5)], lambda x: torch.roll(x, (1, -2), (0, 1)), args={"shifts": [1, -2], "dims": [0, 1]})
case("roll", [rn(3, 4)], lambda x: torch.roll(x, 5), args={"shifts": [5], "dims": []})
case("roll", [ints(6)], lambda x: torch.roll(x, -1, 0), args={"shifts": [-1], "dims": [0]}, dtype="i64")
case("diagonal", [rn(4, 5)], lambda x: torch.diagonal(x, 1), args={"offset": 1, "dim1": 0, "dim2": 1})
case("diagonal", [rn(2, 5, 4)], lambda x: torch.diagonal(x, -1, 1, 2), args={"offset": -1, "dim1": 1, "dim2": 2})
mask_b = torch.rand(5, 6) > 0.5
for op in ["any", "all"]:
    fn = getattr(torch, op)
    case(op, [mask_b], lambda x, f=fn: f(x, 1), args={"dims": [1], "keepdim": False}, dtype="bool")
    case(op, [(torch.rand(4, 3) > 0.3).float()], lambda x, f=fn: f(x, 0, keepdim=True),
         args={"dims": [0], "keepdim": True})
    case(op, [ints(3, 4, high=2)], lambda x, f=fn: f(x), args={"dims": [], "keepdim": False}, dtype="i64")
for op in ["logical_and", "logical_or", "logical_xor"]:
    fn = getattr(torch, op)
    case(op, [ints(4, 5, high=2), torch.rand(5) > 0.5], fn, dtype="i64")
    case(op, [rn(4, 5).round(), rn(4, 1).round()], fn)
case("logical_not", [ints(4, 5, high=2)], torch.logical_not, dtype="i64")
case("logical_not", [rn(4, 5).round()], torch.logical_not)
for p_ in [2.0, 1.0, 3.0, "inf", 0.0]:
    pv = float(p_)
    # p = 0 counts non-zeros: Ember returns it untracked (PyTorch's gradient is all zeros).
    case("norm", [rn(4, 6)], lambda x, p=pv: torch.linalg.vector_norm(x, p, dim=1),
         args={"p": str(p_), "dims": [1], "keepdim": False}, const=(0,) if pv == 0.0 else ())
case("norm", [rn(3, 4)], lambda x: torch.linalg.vector_norm(x), args={"p": "2.0", "dims": [], "keepdim": False})
case("baddbmm", [rn(3, 5), rn(2, 3, 4), rn(2, 4, 5)], lambda c, a, b: torch.baddbmm(c, a, b, beta=0.5, alpha=2.0),
     args={"beta": 0.5, "alpha": 2.0})
case("masked_select", [rn(4, 5), torch.rand(4, 5) > 0.5], torch.masked_select)
case("masked_select", [rn(4, 5), torch.rand(5) > 0.3], torch.masked_select)
case("nonzero", [rn(3, 4).round()], torch.nonzero)
case("nonzero", [ints(2, 3, 4, high=2)], torch.nonzero, dtype="i64")
cond = torch.rand(4, 5) > 0.5
case("where_scalar", [cond, rn(4, 5)], lambda c, x: torch.where(c, x, 0.5), args={"true": None, "false": 0.5})
case("where_scalar", [cond, rn(5)], lambda c, x: torch.where(c, -2.0, x), args={"true": -2.0, "false": None})
case("where_scalar", [cond, ints(4, 5)], lambda c, x: torch.where(c, x, 3), args={"true": None, "false": 3},
     dtype="i64")
CONV_TOL = (1e-4, 1e-5)
case("conv1d", [rn(2, 4, 11), rn(6, 4, 3), rn(6)], lambda x, w, b: F_.conv1d(x, w, b),
     args={"stride": [1], "padding": [0], "dilation": [1], "groups": 1}, tol=CONV_TOL)
case("conv1d", [rn(2, 4, 11), rn(6, 2, 3), rn(6)], lambda x, w, b: F_.conv1d(x, w, b, 2, 2, 2, 2),
     args={"stride": [2], "padding": [2], "dilation": [2], "groups": 2}, tol=CONV_TOL)
case("conv2d", [rn(2, 3, 7, 8), rn(5, 3, 3, 3), rn(5)], lambda x, w, b: F_.conv2d(x, w, b, padding=1),
     args={"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 1}, tol=CONV_TOL)
case("conv2d", [rn(2, 4, 9, 7), rn(6, 2, 3, 2), rn(6)],
     lambda x, w, b: F_.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2),
     args={"stride": [2, 1], "padding": [1, 0], "dilation": [1, 2], "groups": 2}, tol=CONV_TOL)
case("conv2d", [rn(3, 6, 6), rn(2, 3, 2, 2), rn(2)], lambda x, w, b: F_.conv2d(x, w, b),
     args={"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1}, tol=CONV_TOL)
case("max_pool1d", [rn(2, 3, 11)], lambda x: F_.max_pool1d(x, 3, 2, 1),
     args={"kernel": [3], "stride": [2], "padding": [1], "dilation": [1]})
case("max_pool2d", [rn(2, 3, 8, 9)], lambda x: F_.max_pool2d(x, 2),
     args={"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1]})
case("max_pool2d", [rn(2, 3, 8, 9)], lambda x: F_.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2)),
     args={"kernel": [3, 2], "stride": [2, 1], "padding": [1, 1], "dilation": [1, 2]})
case("avg_pool1d", [rn(2, 3, 11)], lambda x: F_.avg_pool1d(x, 3, 2, 1),
     args={"kernel": [3], "stride": [2], "padding": [1], "count_include_pad": True})
case("avg_pool2d", [rn(2, 3, 8, 9)], lambda x: F_.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
     args={"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1], "count_include_pad": False})
case("avg_pool2d", [rn(3, 6, 6)], lambda x: F_.avg_pool2d(x, 2),
     args={"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "count_include_pad": True})
case("adaptive_avg_pool1d", [rn(2, 3, 10)], lambda x: F_.adaptive_avg_pool1d(x, 4), args={"out": [4]})
case("adaptive_avg_pool2d", [rn(2, 3, 7, 9)], lambda x: F_.adaptive_avg_pool2d(x, (3, 4)), args={"out": [3, 4]})
case("adaptive_max_pool1d", [rn(2, 3, 10)], lambda x: F_.adaptive_max_pool1d(x, 3), args={"out": [3]})
case("adaptive_max_pool2d", [rn(2, 3, 7, 9)], lambda x: F_.adaptive_max_pool2d(x, (2, 4)), args={"out": [2, 4]})
t3 = rn(4, 5, 6)
case("index", [t3], lambda x: x[:, 2, 1:], args={"index": [[None, None, 1], 2, [1, None, 1]]})
case("index", [t3], lambda x: x[..., -1], args={"index": ["...", -1]})
case("index", [t3], lambda x: x[1, None, ::2], args={"index": [1, "new", [None, None, 2]]})
case("index", [t3], lambda x: x[-3:-1, ..., None, 2:5:2], args={"index": [[-3, -1, 1], "...", "new", [2, 5, 2]]})
for op in ["add_", "sub_", "mul_", "div_"]:
    case(op, [rn(4, 5), rn(5)], lambda a, b, o=op: getattr(a.clone(), o)(b))
case("add_", [ints(4, 5), ints(5)], lambda a, b: a.clone().add_(b), dtype="i64")
case("copy_", [rn(4, 5), rn(4, 1)], lambda a, b: a.clone().copy_(b))
case("fill_", [rn(4, 5)], lambda a: a.clone().fill_(2.5), args={"value": 2.5})

# ---------------------------------------------------------------- fused head and loss
tl = torch.randint(0, 9, (7,))
tl[2] = -100
case("linear_cross_entropy", [rn(7, 33), rn(9, 33), tl],
     lambda x, w, t: FN.cross_entropy(FN.linear(x, w), t), args={"reduction": "mean", "smoothing": 0.0})
case("linear_cross_entropy", [rn(7, 33), rn(9, 33), tl],
     lambda x, w, t: FN.cross_entropy(FN.linear(x, w), t, reduction="sum", label_smoothing=0.1),
     args={"reduction": "sum", "smoothing": 0.1}, views=[None, ["narrow", 1, 0, 33], None])
case("silu_mul", [rn(7, 33), rn(7, 33)], lambda a, b: FN.silu(a) * b)
case("silu_mul", [3 * rn(2, 5, 9), rn(2, 5, 9)], lambda a, b: FN.silu(a) * b,
     views=[["narrow", 2, 1, 7], ["narrow", 2, 0, 7]])

# ---------------------------------------------------------------- soft-target cross-entropy
# Probability targets of the logits' shape (appended last, so earlier cases keep their draws).
soft = torch.softmax(rn(7, 33), -1)
case("cross_entropy", [rn(7, 33), soft], lambda x, t: FN.cross_entropy(x, t),
     args={"reduction": "mean", "smoothing": 0.0}, name="cross_entropy_soft_mean")
case("cross_entropy", [rn(7, 33), soft], lambda x, t: FN.cross_entropy(x, t, reduction="sum",
     label_smoothing=0.1), args={"reduction": "sum", "smoothing": 0.1}, name="cross_entropy_soft_sum")
case("cross_entropy", [rn(7, 33), soft], lambda x, t: FN.cross_entropy(x, t, reduction="none"),
     args={"reduction": "none", "smoothing": 0.0}, name="cross_entropy_soft_none")

os.makedirs(ROOT, exist_ok=True)
save_file(tensors, os.path.join(ROOT, "ops.safetensors"))
with open(os.path.join(ROOT, "ops.json"), "w") as f:
    json.dump({"generator": "scripts/make_fixtures.py", "torch": torch.__version__, "cases": specs},
              f, indent=1)
print(f"{len(specs)} cases ({sum(1 for s in specs if s['grad_inputs'])} with gradients), "
      f"{len(tensors)} tensors, ops: {len({s['op'] for s in specs})}")

# ---------------------------------------------------------------- small models: gradients
# A two-layer MLP and a one-block pre-norm transformer, written with torch ops; Ember rebuilds
# them from its own ops (crates/ember-autograd/tests/models_vs_pytorch.rs) and must give the
# same loss and parameter gradients.
import torch.nn.functional as F

torch.manual_seed(1)
m = {}
m["mlp/x"] = torch.randn(8, 5)
m["mlp/t"] = torch.randint(0, 3, (8,))
mlp = {"w1": torch.randn(16, 5) * 0.4, "b1": torch.randn(16) * 0.1,
       "w2": torch.randn(3, 16) * 0.3, "b2": torch.randn(3) * 0.1}
p = {k: v.clone().requires_grad_(True) for k, v in mlp.items()}
h = F.relu(m["mlp/x"] @ p["w1"].T + p["b1"])
loss = F.cross_entropy(h @ p["w2"].T + p["b2"], m["mlp/t"])
loss.backward()
m["mlp/loss"] = loss.detach().reshape(())
for k in mlp:
    m[f"mlp/{k}"] = mlp[k]
    m[f"mlp/grad.{k}"] = p[k].grad

V, T, C, H = 11, 6, 16, 4
blk = {"wte": torch.randn(V, C) * 0.3, "wpe": torch.randn(T, C) * 0.1,
       "ln1.w": 1 + 0.1 * torch.randn(C), "ln1.b": 0.1 * torch.randn(C),
       "attn.w": torch.randn(3 * C, C) * 0.2, "attn.b": 0.1 * torch.randn(3 * C),
       "proj.w": torch.randn(C, C) * 0.2, "ln2.w": 1 + 0.1 * torch.randn(C),
       "ln2.b": 0.1 * torch.randn(C), "fc.w": torch.randn(4 * C, C) * 0.2,
       "fc2.w": torch.randn(C, 4 * C) * 0.1, "lnf.w": 1 + 0.1 * torch.randn(C)}
ids = torch.randint(0, V, (2, T))
tgt = torch.randint(0, V, (2, T))
tgt[0, 2] = -100
p = {k: v.clone().requires_grad_(True) for k, v in blk.items()}
x = p["wte"][ids] + p["wpe"]                                     # (B, T, C)
a = F.layer_norm(x, (C,), p["ln1.w"], p["ln1.b"], 1e-5)
qkv = a @ p["attn.w"].T + p["attn.b"]                            # (B, T, 3C)
q, k, v = qkv.split(C, dim=-1)
q, k, v = (z.reshape(2, T, H, C // H).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
y = y.transpose(1, 2).reshape(2, T, C) @ p["proj.w"].T
x = x + y
m2 = F.layer_norm(x, (C,), p["ln2.w"], p["ln2.b"], 1e-5)
x = x + F.gelu(m2 @ p["fc.w"].T, approximate="tanh") @ p["fc2.w"].T
x = F.rms_norm(x, (C,), p["lnf.w"], 1e-6)
logits = x @ p["wte"].T                                          # tied head
loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
loss.backward()
m["block/ids"], m["block/targets"], m["block/loss"] = ids, tgt, loss.detach().reshape(())
for k in blk:
    m[f"block/{k}"] = blk[k]
    m[f"block/grad.{k}"] = p[k].grad
save_file({k: v.contiguous() for k, v in m.items()}, os.path.join(ROOT, "models.safetensors"))
print(f"models: mlp loss {m['mlp/loss'].item():.6f}, block loss {m['block/loss'].item():.6f}")
