//! Semantic search as sentence-transformers does it: MiniLM embeds each passage (mean pooling
//! over its real tokens, then unit length) and a query ranks them by cosine similarity.

use ember::models::{Bert, Tokenizer};
use ember::prelude::*;
use serde::Serialize;

/// MiniLM's `max_seq_length` in sentence-transformers: longer passages are truncated.
pub const MAX_TOKENS: usize = 256;

/// A speech of a play: who speaks and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speech {
    /// The speaker's heading as printed (`"Ham."`).
    pub speaker: String,
    /// The speech, its lines joined with spaces.
    pub text: String,
}

/// The speeches of a Project Gutenberg play with at least `min_words` words: blocks between
/// blank lines whose first line is a short heading ending in a full stop (`"Hor."`), stage
/// directions in brackets left out.
pub fn split_speeches(play: &str, min_words: usize) -> Vec<Speech> {
    let mut out = Vec::new();
    for block in play.split("\n\n").flat_map(|b| b.split("\r\n\r\n")) {
        let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
        let Some(head) = lines.next() else { continue };
        let is_heading = head.len() <= 24
            && head.ends_with('.')
            && head.chars().next().is_some_and(char::is_uppercase)
            && head.split_whitespace().count() <= 3;
        if !is_heading {
            continue;
        }
        let text = lines
            .filter(|l| !(l.starts_with('[') && l.ends_with(']')))
            .collect::<Vec<_>>()
            .join(" ");
        if text.split_whitespace().count() >= min_words {
            out.push(Speech {
                speaker: head.to_string(),
                text,
            });
        }
    }
    out
}

/// One passage's place and score in a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    /// Index among the passages, in the order they were added.
    pub index: usize,
    /// Cosine similarity with the query.
    pub score: f32,
}

/// A sentence-transformer and the passages it has embedded.
pub struct SearchIndex {
    model: Bert,
    tok: Tokenizer,
    dim: usize,
    /// `(N, dim)` row-major, unit rows.
    passages: Vec<f32>,
}

impl SearchIndex {
    /// MiniLM from the bytes of its `config.json`, `model.safetensors` and `tokenizer.json`.
    pub fn new(config: &[u8], weights: Vec<u8>, tokenizer: &[u8]) -> Result<SearchIndex> {
        let model = Bert::from_bytes(config, weights, Device::Cpu, DType::F32)?;
        let tok = Tokenizer::from_bytes(tokenizer, "tokenizer.json")?;
        let dim = model.cfg.hidden_size;
        Ok(SearchIndex {
            model,
            tok,
            dim,
            passages: Vec::new(),
        })
    }

    /// Width of an embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Passages embedded so far.
    pub fn len(&self) -> usize {
        self.passages.len() / self.dim
    }

    /// Whether no passage has been added.
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// Embeddings of `texts`: `(N, dim)` row-major, each row of unit length. Each text is
    /// truncated to [`MAX_TOKENS`] tokens (its `[SEP]` kept), as sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(texts.len());
        for t in texts {
            let mut ids = self.tok.encode(t, true)?;
            if ids.len() > MAX_TOKENS {
                let last = ids[ids.len() - 1];
                ids.truncate(MAX_TOKENS - 1);
                ids.push(last);
            }
            rows.push(ids);
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for r in &rows {
            ids.extend(r.iter().copied().chain(std::iter::repeat_n(0, t - r.len())));
            mask.extend((0..t).map(|i| i64::from(i < r.len())));
        }
        let shape = [texts.len(), t];
        let ids = Tensor::from_vec(ids, &shape, Device::Cpu)?; // (N, T)
        let mask = Tensor::from_vec(mask, &shape, Device::Cpu)?; // (N, T)
        let _no_grad = no_grad();
        self.model.embed(&ids, &mask)?.to_vec::<f32>() // (N, dim)
    }

    /// Embeds `texts` and keeps them as passages (call in small batches to report progress).
    pub fn add(&mut self, texts: &[&str]) -> Result<()> {
        let e = self.embed(texts)?;
        self.passages.extend(e);
        Ok(())
    }

    /// The `k` passages most similar to `query`, best first.
    pub fn rank(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let q = self.embed(&[query])?;
        let mut hits: Vec<Hit> = self
            .passages
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(index, p)| Hit {
                index,
                score: p.iter().zip(&q).map(|(a, b)| a * b).sum(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        Ok(hits)
    }
}
