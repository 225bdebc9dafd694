#!/usr/bin/env python3
"""Checks that the layers of ember-core only point down.

    python3 scripts/check_layers.py             # exit status 1 on any violation
    python3 scripts/check_layers.py --self-test # the checker finds planted violations

The layers of crates/ember-core/src, from the bottom:

    base      base/      dtypes, shapes, devices, errors, memory bounds, options, op tables, quant formats
    kernels   kernels/   the only code that computes (burn's primitives and Ember's SIMD kernels);
                         inside it: prim and trace < cpu/ < the kernel entries (kernels/*.rs)
    autograd  autograd/  the recorded ops, the rule file, the engine
    ops       ops/       Tensor methods; with lib.rs, autocast.rs and usage.rs, the crate's front

`tensor.rs` is the handle every layer passes around (the `Tensor` record joins a kernel
primitive and an autograd node): any layer may name `Tensor` and `TensorId`, and the record
may name what it holds. Composed definitions in kernel entries call `Tensor` methods (that is
what makes them the reference), which needs no import from `ops`.

Checked, from every `use` tree and inline `crate::`/`super::` path of every file:
1. no module imports from a layer above its own (a name re-exported at the crate root counts
   as the module that defines it);
2. only the kernel layer imports burn's compute crates (`burn_dispatch`, `burn_backend`,
   `burn_flex`, `gemm`); `base/dtype.rs` and `base/device.rs` may name burn's dtypes and
   devices (the mapping to Ember's own);
3. no two files import each other, directly or through others (a cycle of files), except
   inside `autograd/` (the op record, the engine and the rule file form one unit) and among
   `base/error.rs`, `base/dtype.rs` and `base/device.rs` (an error carries dtypes and
   devices; their checks return errors).
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ember-core", "src")
LAYERS = ["base", "kernels", "autograd", "ops"]
FRONT = {"lib", "autocast", "usage"}  # crate-root modules of the top layer
HANDLE = "tensor"
BURN = ("burn_dispatch", "burn_backend", "burn_flex", "gemm")
BURN_NAMING = {"base/dtype.rs", "base/device.rs"}
# Files that name each other by design, checked as one unit: the errors, dtypes and devices
# (an error carries dtypes and devices, their checks return errors), and autograd's record,
# engine and rules.
UNITS = [{"base/error.rs", "base/dtype.rs", "base/device.rs"}]


def module_path(rel):
    """`kernels/cpu/gemm/bf16.rs` -> ['kernels', 'cpu', 'gemm', 'bf16']; mod.rs names its folder."""
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return [] if parts == ["lib"] else parts


def strip_comments(src):
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return "\n".join(line.split("//")[0] for line in src.splitlines())


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s*([{},]|::)\s*", r"\1", re.sub(r"\s+", " ", tree.strip()))
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner = tree[:start], tree[start + 1 : i]
                items, d, last = [], 0, 0
                for j, c in enumerate(inner + ","):
                    if c in "{":
                        d += 1
                    elif c == "}":
                        d -= 1
                    elif c == "," and d == 0:
                        if inner[last:j]:
                            items.append(inner[last:j])
                        last = j + 1
                return [p for item in items for p in expand(prefix + item)]
    return [tree]


def paths_of(src):
    """Every path a file names: whole `use` trees, and inline `crate::`/`super::` paths."""
    src = strip_comments(src)
    out = []
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        out += expand(m.group(1))
    body = re.sub(r"\buse\s+[^;]+;", "", src)
    out += re.findall(r"(?<![\w:$])((?:crate|super|self)(?:::\w+)+)", body)
    out += re.findall(r"\$crate((?:::\w+)+)", body)  # macros: `$crate::kernels::...`
    return [p if not p.startswith("::") else "crate" + p for p in out]


def root_exports(lib_src):
    """Names re-exported at the crate root -> the module path they come from."""
    names = {}
    for m in re.finditer(r"\bpub(?:\(crate\))?\s+use\s+([^;]+);", strip_comments(lib_src)):
        for p in expand(m.group(1)):
            segs = p.split(" as ")[0].split("::")
            if segs[0] == "crate":
                segs = segs[1:]
            names[segs[-1]] = segs[:-1]
    return names


def resolve(path, here, exports, modules):
    """The module (as a list of segments) that `path`, written in module `here`, points into;
    None for paths outside the crate."""
    segs = [s for s in path.split(" as ")[0].split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        cur = []
        segs = segs[1:]
    elif segs[0] in ("super", "self"):
        cur = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
    else:
        return None
    # Walk down while the segments name modules.
    while segs and tuple(cur + [segs[0]]) in modules:
        cur.append(segs[0])
        segs = segs[1:]
    if not cur and segs and segs[0] in exports:  # a root re-export
        target = exports[segs[0]]
        if not target or (target[0],) not in modules:
            return None  # another crate's item (`half::bf16`)
        return target
    return cur or ["lib"]


def layer_of(mod):
    top = mod[0] if mod else "lib"
    if top in LAYERS:
        return top
    if top == HANDLE:
        return HANDLE
    if top in FRONT:
        return "ops"
    raise SystemExit(f"check_layers: module {'::'.join(mod)} belongs to no layer; add it to one")


def kernel_sublayer(mod):
    """Inside kernels: 0 prim/trace, 1 cpu, 2 the entries."""
    if len(mod) < 2 or mod[1] in ("prim", "trace"):
        return 0 if len(mod) >= 2 else 2
    return 1 if mod[1] == "cpu" else 2


def check(root):
    """The violations in the crate source tree at `root`, and the number of files read."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith(".rs"):
                full = os.path.join(dirpath, n)
                files[os.path.relpath(full, root).replace(os.sep, "/")] = open(full).read()
    modules = {tuple(module_path(rel)) for rel in files}
    exports = root_exports(files["lib.rs"])
    file_of = {tuple(module_path(rel)): rel for rel in files}
    problems, edges = [], {}
    for rel, src in sorted(files.items()):
        here = module_path(rel)
        mine = layer_of(here)
        for path in paths_of(src):
            first = path.split("::")[0]
            if first in BURN and mine != "kernels" and rel not in BURN_NAMING:
                problems.append(f"{rel}: uses `{path}`: only the kernel layer calls burn")
                continue
            target = resolve(path, here, exports, modules)
            if target is None:
                continue
            theirs = layer_of(target)
            if HANDLE in (mine, theirs):
                pass
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                problems.append(f"{rel} ({mine}) imports `{path}` from the {theirs} layer above it")
            elif mine == theirs == "kernels" and kernel_sublayer(target) > kernel_sublayer(here):
                problems.append(f"{rel} imports `{path}`: kernels/cpu only uses prim and trace, never an entry")
            # File-level edges for the cycle check.
            t = tuple(target)
            while t and t not in file_of:
                t = t[:-1]
            dst = file_of.get(t)
            if dst and dst != rel and HANDLE not in (mine, theirs) and dst != "lib.rs":
                edges.setdefault(rel, set()).add(dst)
    problems += cycles(edges)
    return problems, len(files)


def self_test():
    """Plants each kind of violation in a small tree and checks that it is reported (and
    that the tree without them passes)."""
    import tempfile

    clean = {
        "lib.rs": "mod base; mod kernels; mod autograd; mod ops; mod tensor;\n"
        "pub use base::dtype::DType;\npub use autograd::no_grad;\npub use tensor::Tensor;\n",
        "tensor.rs": "use crate::kernels::prim::Prim;\nuse crate::autograd::Track;\n",
        "base/mod.rs": "pub(crate) mod dtype;\npub(crate) mod error;\n",
        "base/dtype.rs": "use crate::base::error::Error;\nuse burn_backend::DType;\n",
        "base/error.rs": "use crate::DType;\n",
        "kernels/mod.rs": "pub(crate) mod prim;\npub(crate) mod cpu;\npub(crate) mod norm;\n",
        "kernels/prim.rs": "use burn_dispatch::Dispatch;\nuse crate::DType;\n",
        "kernels/cpu/mod.rs": "pub(crate) mod simd;\npub(crate) mod norm;\n",
        "kernels/cpu/simd.rs": "use crate::kernels::prim::Prim;\n",
        "kernels/cpu/norm.rs": "use super::simd::map;\nuse crate::kernels::prim::Prim;\n",
        "kernels/norm.rs": "use super::cpu::norm as cpu;\nuse crate::{DType, Tensor};\n",
        "autograd/mod.rs": "mod graph;\npub use graph::no_grad;\n",
        "autograd/graph.rs": "use crate::kernels::norm;\nuse crate::Tensor;\n",
        "ops/mod.rs": "mod norm;\n",
        "ops/norm.rs": "use crate::autograd::no_grad;\nuse crate::kernels;\n",
    }
    planted = {
        "kernel imports ops": ("kernels/norm.rs", "use crate::ops::norm::X;\n", "from the ops layer"),
        "kernel imports a root re-export of autograd": (
            "kernels/norm.rs", "use crate::{Tensor, no_grad};\n", "from the autograd layer"),
        "inline path upward": ("base/error.rs", "fn f() { crate::kernels::prim::x(); }\n", "from the kernels layer"),
        "ops calls burn": ("ops/norm.rs", "use burn_dispatch::Dispatch as B;\n", "only the kernel layer calls burn"),
        "cpu imports an entry": ("kernels/cpu/norm.rs", "use crate::kernels::norm::f;\n", "never an entry"),
        "a cycle of files": ("kernels/cpu/simd.rs", "use super::norm::g;\n", "import each other"),
    }
    with tempfile.TemporaryDirectory() as root:
        def write(tree):
            for rel, src in tree.items():
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").write(src)
        write(clean)
        problems, _ = check(root)
        assert not problems, f"the clean tree fails: {problems}"
        for name, (rel, line, expect) in planted.items():
            write({rel: clean[rel] + line})
            problems, _ = check(root)
            assert any(expect in p for p in problems), f"{name}: not reported ({problems})"
            write({rel: clean[rel]})
    print(f"check_layers self-test: the clean tree passes, {len(planted)} planted violations are reported")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    problems, count = check(ROOT)
    if problems:
        print("ember-core's layers point upward or in circles:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        sys.exit(1)
    print(f"ember-core layers: {count} files, every import points down")


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 and not (all(c.startswith("autograd/") for c in comp) or any(set(comp) <= u for u in UNITS)):
                out.append("files import each other: " + " <-> ".join(sorted(comp)))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
