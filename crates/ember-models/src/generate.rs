//! Autoregressive generation with a KV cache: greedy, temperature, top-k, top-p, repetition
//! penalty, stop tokens, a seed, and a callback per token.

use ember_core::{Device, Error, Generator, Result, Tensor, no_grad};

use crate::CausalLm;

/// Generation settings (greedy by default).
#[derive(Debug, Clone)]
pub struct GenerateOpts {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy.
    pub temperature: f64,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0: all).
    pub top_p: f64,
    /// Divide positive logits (multiply negative ones) of already seen tokens by this, as HF.
    pub repetition_penalty: f64,
    /// Stop after generating any of these.
    pub stop_tokens: Vec<i64>,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for GenerateOpts {
    fn default() -> Self {
        GenerateOpts {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop_tokens: Vec::new(),
            seed: 0,
        }
    }
}

/// Picks the next token from one row of logits.
fn pick(logits: &mut [f32], seen: &[i64], opts: &GenerateOpts, g: &mut Generator) -> i64 {
    if opts.repetition_penalty != 1.0 {
        for &t in seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 {
                    *l / opts.repetition_penalty as f32
                } else {
                    *l * opts.repetition_penalty as f32
                };
            }
        }
    }
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0 as i64
    };
    if opts.temperature <= 0.0 {
        return argmax(logits);
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if opts.top_k > 0 {
        idx.truncate(opts.top_k);
    }
    let max = logits[idx[0]] as f64;
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / opts.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if opts.top_p < 1.0 {
        let mut acc = 0.0;
        let keep = probs
            .iter()
            .position(|p| {
                acc += p;
                acc >= opts.top_p
            })
            .map_or(probs.len(), |k| k + 1);
        idx.truncate(keep);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = g.uniform();
    for (k, p) in probs.iter().enumerate() {
        if u < *p {
            return idx[k] as i64;
        }
        u -= p;
    }
    idx[probs.len() - 1] as i64
}

/// Continues `prompt`: one prefill forward over the prompt, then one cached forward per
/// token. Calls `on_token` with each new token as it is chosen; returns the new tokens.
pub fn generate(
    model: &dyn CausalLm,
    prompt: &[i64],
    device: Device,
    opts: &GenerateOpts,
    mut on_token: impl FnMut(i64),
) -> Result<Vec<i64>> {
    if prompt.is_empty() {
        return Err(Error::data("generate", "the prompt is empty"));
    }
    let _guard = no_grad();
    let mut g = Generator::new(opts.seed);
    let mut cache = model.new_cache();
    let mut seen = prompt.to_vec();
    let mut out = Vec::new();
    let mut input = Tensor::from_vec(prompt.to_vec(), &[1, prompt.len()], device)?;
    for _ in 0..opts.max_new_tokens {
        let logits = model.forward_cached(&input, &mut cache)?; // (1, T, V)
        let t = logits.dims()[1];
        let mut last = logits
            .narrow(1, t - 1, 1)?
            .reshape(&[-1])?
            .to_vec::<f32>()?;
        let next = pick(&mut last, &seen, opts, &mut g);
        on_token(next);
        out.push(next);
        seen.push(next);
        if opts.stop_tokens.contains(&next) {
            break;
        }
        input = Tensor::from_vec(vec![next], &[1, 1], device)?;
    }
    Ok(out)
}
