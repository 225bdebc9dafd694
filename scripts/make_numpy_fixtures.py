#!/usr/bin/env python3
"""Small NumPy files for crates/ember-weights/tests/numpy_files.rs, written by NumPy itself:
every dtype Ember reads, both byte orders, C and Fortran order, .npz plain and compressed, and
a pickled object array that must be refused.

Usage: python scripts/make_numpy_fixtures.py   (numpy)
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "numpy")
os.makedirs(OUT, exist_ok=True)
arrays = {
    "f32_c": np.arange(12, dtype=np.float32).reshape(3, 4),
    "f64_fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3) * 0.5),
    "f16": np.arange(4, dtype=np.float16) / 4,
    "f4_big_endian": np.arange(3, dtype=">f4"),
    "i32": np.arange(-3, 3, dtype=np.int32),
    "u8": np.arange(5, dtype=np.uint8),
    "i64_3d": np.arange(24, dtype=np.int64).reshape(2, 3, 4),
    "bool": np.array([True, False, True]),
}
for name, a in arrays.items():
    np.save(os.path.join(OUT, f"{name}.npy"), a)
np.save(os.path.join(OUT, "object.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
pair = {"x": np.arange(4, dtype=np.float32), "y": np.array([[1, 2], [3, 4]], dtype=np.int64)}
np.savez(os.path.join(OUT, "arrays.npz"), **pair)
np.savez_compressed(os.path.join(OUT, "compressed.npz"), **pair)
print(sorted(os.listdir(OUT)))
