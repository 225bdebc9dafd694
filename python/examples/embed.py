"""Sentence embeddings with MiniLM (all-MiniLM-L6-v2 from scripts/fetch_assets.sh): mean
pooling over real tokens (not padding), L2-normalized, as sentence-transformers does; prints
the cosine similarity matrix of a few sentences.

    python python/examples/embed.py
"""

import os
import sys

import ember

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
]


def main():
    path = os.path.join(os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets")), "minilm")
    if not os.path.exists(path):
        sys.exit(f"{path} does not exist: run `bash scripts/fetch_assets.sh`")
    model = ember.models.AutoModel.from_pretrained(path)
    ids, mask = model.tokenizer.encode_batch(SENTENCES)
    emb = model.embed(ids, mask)  # (N, 384), unit rows
    sims = emb @ emb.T
    for s, row in zip(SENTENCES, sims.tolist()):
        print(" ".join(f"{x:5.2f}" for x in row), " ", s)


if __name__ == "__main__":
    main()
