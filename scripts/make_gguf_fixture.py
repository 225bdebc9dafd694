#!/usr/bin/env python3
"""Writes a tiny GGUF file and the values the `gguf` package dequantizes it to.

Usage: python scripts/make_gguf_fixture.py   (needs: pip install gguf numpy safetensors)

Output:
  tests/fixtures/tiny.gguf              GGUF v3: metadata of every value type, tensors in
                                        F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
                                        Q4_K, Q5_K, Q6_K, Q2_K, Q3_K
  tests/fixtures/tiny_gguf_ref.safetensors  each tensor dequantized by gguf.quants.dequantize,
                                        in PyTorch shape order (GGUF dims reversed)
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as Q, GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
rng = np.random.default_rng(0)

w = GGUFWriter(os.path.join(ROOT, "tiny.gguf"), arch="llama")
w.add_uint32("llama.block_count", 2)
w.add_float32("llama.rope.freq_base", 10000.0)
w.add_string("general.name", "tiny")
w.add_bool("general.flag", True)
w.add_int64("general.i64", -7)
w.add_float64("general.f64", 0.5)
w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
w.add_array("general.ints", [1, 2, 3])

refs = {}


def add(name, qtype, shape):
    """shape in PyTorch order (rows, cols); GGUF stores cols first."""
    data = rng.standard_normal(shape).astype(np.float32)
    if qtype in (Q.F32,):
        raw = data
    elif qtype == Q.F16:
        raw = data.astype(np.float16)
    else:
        try:
            raw = quantize(data, qtype)
        except NotImplementedError:
            raw = random_blocks(qtype, shape)
    w.add_tensor(name, raw, raw_dtype=qtype)
    refs[name] = dequantize(raw, qtype).reshape(shape).astype(np.float32)


def random_blocks(qtype, shape):
    """Random raw K-quant blocks with sane f16 scales (no quantizer in the gguf package)."""
    n = shape[0] * shape[1]
    if qtype == Q.Q4_K:
        blocks = rng.integers(0, 256, size=(n // 256, 144), dtype=np.uint8)
        blocks[:, 0:4] = np.frombuffer(
            rng.uniform(0.01, 0.1, size=(n // 256, 2)).astype(np.float16).tobytes(), dtype=np.uint8
        ).reshape(-1, 4)
    elif qtype == Q.Q5_K:
        blocks = rng.integers(0, 256, size=(n // 256, 176), dtype=np.uint8)
        blocks[:, 0:4] = np.frombuffer(
            rng.uniform(0.01, 0.1, size=(n // 256, 2)).astype(np.float16).tobytes(), dtype=np.uint8
        ).reshape(-1, 4)
    elif qtype == Q.Q2_K:
        blocks = rng.integers(0, 256, size=(n // 256, 84), dtype=np.uint8)
        blocks[:, 80:84] = np.frombuffer(
            rng.uniform(0.01, 0.1, size=(n // 256, 2)).astype(np.float16).tobytes(), dtype=np.uint8
        ).reshape(-1, 4)
    elif qtype == Q.Q3_K:
        blocks = rng.integers(0, 256, size=(n // 256, 110), dtype=np.uint8)
        blocks[:, 108:110] = np.frombuffer(
            rng.uniform(0.01, 0.1, size=(n // 256,)).astype(np.float16).tobytes(), dtype=np.uint8
        ).reshape(-1, 2)
    elif qtype == Q.Q6_K:
        blocks = rng.integers(0, 256, size=(n // 256, 210), dtype=np.uint8)
        blocks[:, 208:210] = np.frombuffer(
            rng.uniform(0.01, 0.1, size=(n // 256,)).astype(np.float16).tobytes(), dtype=np.uint8
        ).reshape(-1, 2)
    else:
        raise ValueError(qtype)
    return blocks.reshape(shape[0], -1)


add("f32.weight", Q.F32, (3, 5))
add("f16.weight", Q.F16, (4, 6))
add("bf16.weight", Q.BF16, (2, 64))
add("q8_0.weight", Q.Q8_0, (3, 64))
add("q4_0.weight", Q.Q4_0, (2, 96))
add("q4_1.weight", Q.Q4_1, (4, 32))
add("q5_0.weight", Q.Q5_0, (3, 64))
add("q5_1.weight", Q.Q5_1, (2, 96))
add("q4_k.weight", Q.Q4_K, (2, 512))
add("q5_k.weight", Q.Q5_K, (2, 256))
add("q6_k.weight", Q.Q6_K, (3, 256))
add("q2_k.weight", Q.Q2_K, (2, 256))
add("q3_k.weight", Q.Q3_K, (2, 512))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
save_file(refs, os.path.join(ROOT, "tiny_gguf_ref.safetensors"))
print("wrote", sorted(refs))
