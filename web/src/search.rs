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
    device: Device,
    dim: usize,
    /// `(N, dim)` row-major, unit rows.
    passages: Vec<f32>,
}

impl SearchIndex {
    /// MiniLM from the bytes of its `config.json`, `model.safetensors` and `tokenizer.json`,
    /// on `device` (on the web, await [`Device::init_async`] before naming WebGPU).
    pub fn new(
        config: &[u8],
        weights: Vec<u8>,
        tokenizer: &[u8],
        device: Device,
    ) -> Result<SearchIndex> {
        let model = Bert::from_bytes(config, weights, device, DType::F32)?;
        let tok = Tokenizer::from_bytes(tokenizer, "tokenizer.json")?;
        let dim = model.cfg.hidden_size;
        Ok(SearchIndex {
            model,
            tok,
            device,
            dim,
            passages: Vec::new(),
        })
    }

    /// Where the model runs.
    pub fn device(&self) -> Device {
        self.device
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
        match self.forward(texts)? {
            Some(e) => e.to_vec::<f32>(),
            None => Ok(Vec::new()),
        }
    }

    /// [`SearchIndex::embed`] awaiting the device's read (WebGPU in a browser reads only so).
    pub async fn embed_async(&self, texts: &[&str]) -> Result<Vec<f32>> {
        match self.forward(texts)? {
            Some(e) => e.to_vec_async::<f32>().await,
            None => Ok(Vec::new()),
        }
    }

    /// The `(N, dim)` embeddings of `texts` on the device, `None` for no text.
    fn forward(&self, texts: &[&str]) -> Result<Option<Tensor>> {
        if texts.is_empty() {
            return Ok(None);
        }
        let mut rows = Vec::with_capacity(texts.len());
        for t in texts {
            let mut ids = self.tok.encode(t, true)?;
            if ids.len() > MAX_TOKENS {
                let last = ids[ids.len() - 1];
                ids.truncate(MAX_TOKENS - 1);
                ids.push(last);
            }
            // Checked here: on WebGPU the lookup clamps instead of checking (no sync reads).
            let vocab = self.model.cfg.vocab_size;
            if let Some(bad) = ids.iter().find(|&&id| id < 0 || id as usize >= vocab) {
                return Err(Error::index(
                    "SearchIndex::embed",
                    *bad,
                    vocab,
                    "the tokenizer gave an id outside the model's vocabulary",
                ));
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
        let ids = Tensor::from_vec(ids, &shape, self.device)?; // (N, T)
        let mask = Tensor::from_vec(mask, &shape, self.device)?; // (N, T)
        let _no_grad = no_grad();
        self.model.embed(&ids, &mask).map(Some) // (N, dim)
    }

    /// Embeds `texts` and keeps them as passages (call in small batches to report progress).
    pub fn add(&mut self, texts: &[&str]) -> Result<()> {
        let e = self.embed(texts)?;
        self.add_embeddings(e)
    }

    /// Keeps embeddings made by [`SearchIndex::embed_async`] as passages.
    pub fn add_embeddings(&mut self, embeddings: Vec<f32>) -> Result<()> {
        if !embeddings.len().is_multiple_of(self.dim) {
            return Err(Error::shape(
                "add_embeddings",
                &[&[embeddings.len()]],
                format!("not a whole number of rows of width {}", self.dim),
            ));
        }
        self.passages.extend(embeddings);
        Ok(())
    }

    /// The `k` passages most similar to `query`, best first.
    pub fn rank(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let q = self.embed(&[query])?;
        Ok(self.rank_embedding(&q, k))
    }

    /// [`SearchIndex::rank`] awaiting the device's read.
    pub async fn rank_async(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let q = self.embed_async(&[query]).await?;
        Ok(self.rank_embedding(&q, k))
    }

    /// The `k` passages most similar to the unit embedding `q`, best first.
    fn rank_embedding(&self, q: &[f32], k: usize) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .passages
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(index, p)| Hit {
                index,
                score: p.iter().zip(q).map(|(a, b)| a * b).sum(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        hits
    }
}
