"""The project's PyTorch fixtures (tests/fixtures, made by scripts/make_fixtures.py), read
without torch: a small safetensors reader over NumPy (bf16 widened to float32 exactly)."""

import json
import os
import struct

import numpy as np

import ember

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")

_NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "BOOL": np.bool_}
_EMBER = {"F32": ember.float32, "F64": ember.float64, "F16": ember.float16, "BF16": ember.bfloat16,
          "I64": ember.int64, "BOOL": ember.bool}


def read_safetensors(path):
    """name -> (numpy array, ember dtype); bf16 comes back as float32 holding the same values."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = body[lo:hi]
        dt = info["dtype"]
        if dt == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NP[dt])
        out[name] = (arr.reshape(info["shape"]).copy(), _EMBER[dt])
    return out


def ops_fixtures():
    with open(os.path.join(ROOT, "ops.json")) as f:
        spec = json.load(f)
    return spec["cases"], read_safetensors(os.path.join(ROOT, "ops.safetensors"))


def load(tensors, key, requires_grad=False):
    arr, dt = tensors[key]
    return ember.tensor(arr, dtype=dt, requires_grad=requires_grad)


def as_numpy(t):
    if t.dtype in (ember.float16, ember.bfloat16):
        t = t.float()
    return t.numpy()


def close(ours, theirs, rtol, atol):
    """None when every element is within `atol + rtol * |theirs|` (NaNs where theirs are),
    else a message naming the worst element."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return f"shape {a.shape} vs PyTorch's {b.shape}"
    nan = np.isnan(b)
    if not np.array_equal(np.isnan(a), nan):
        return "NaNs in different places"
    a, b = a[~nan], b[~nan]
    inf = np.isinf(b)
    if not np.array_equal(a[inf], b[inf]):
        return "infinities differ"
    err = np.abs(a[~inf] - b[~inf]) - (atol + rtol * np.abs(b[~inf]))
    if err.size and err.max() > 0:
        i = int(err.argmax())
        return f"worst element {a[~inf][i]} vs PyTorch's {b[~inf][i]}"
    return None
