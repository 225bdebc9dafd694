#!/usr/bin/env python3
"""Compares two train_gpt run directories: the loss of every logged step, and with `exact`
the newest checkpoint's files byte for byte (trainer.json but its validation curve); with `close` the losses within 1e-5 relative.

    python3 scripts/compare_runs.py RUN_A RUN_B exact|close
"""
import json
import pathlib
import sys


def losses(run):
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec and "skipped" not in rec:
            out[rec["step"]] = rec["loss"]
    return out


def newest_checkpoint(run):
    steps = sorted((run / "checkpoints").iterdir())
    return steps[-1]


def main():
    a, b, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    la, lb = losses(a), losses(b)
    if sorted(la) != sorted(lb) or not la:
        sys.exit(f"FAILED: logged steps differ: {sorted(la)[:5]}... vs {sorted(lb)[:5]}...")
    worst = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la)
    if mode == "exact":
        differ = [s for s in la if la[s] != lb[s]]
        if differ:
            s = differ[0]
            sys.exit(f"FAILED: {len(differ)} steps differ, first {s}: {la[s]!r} vs {lb[s]!r}")
        ca, cb = newest_checkpoint(a), newest_checkpoint(b)
        for f in sorted(p.name for p in ca.iterdir()):
            if f == "trainer.json":
                # The validation curve has the points each run evaluated (a run ending at
                # step 20 evaluates there, one going on does not); all else must be equal.
                ta, tb = (json.loads((c / f).read_text()) for c in (ca, cb))
                ta.pop("val_curve"), tb.pop("val_curve")
                if ta != tb:
                    sys.exit(f"FAILED: {ca.name}/{f} differs between {a.name} and {b.name}")
            elif (ca / f).read_bytes() != (cb / f).read_bytes():
                sys.exit(f"FAILED: {ca.name}/{f} differs between {a.name} and {b.name}")
        print(f"{a.name} = {b.name}: {len(la)} losses bit-identical, {ca.name} byte-identical")
    else:
        print(f"{a.name} ~ {b.name}: {len(la)} losses, worst relative difference {worst:.2e}")
        if worst > 1e-5:
            sys.exit(f"FAILED: relative difference {worst:.2e} > 1e-5")


main()
