//! Autoregressive generation with a KV cache: greedy, temperature, top-k, top-p, repetition
//! penalty, stop tokens, a seed, and a callback per token.

use ember_core::{Device, Error, Generator, Result, Tensor, no_grad};

use crate::CausalLm;

/// Generation settings (greedy by default), checked by [`GenerateOpts::validate`] before
/// anything runs.
#[derive(Debug, Clone)]
pub struct GenerateOpts {
    /// Tokens to generate at most. Generation also stops when the model's context is full
    /// (prompt plus new tokens reach its positions).
    pub max_new_tokens: usize,
    /// Softmax temperature: finite and ≥ 0; 0 means greedy (transformers' `do_sample=False`).
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 means no top-k filter (as transformers).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p: in (0, 1]; 1.0 keeps all.
    pub top_p: f64,
    /// Divide positive logits (multiply negative ones) of already seen tokens by this, as HF;
    /// finite and > 0 (1.0: off).
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

impl GenerateOpts {
    /// Checks the options: temperature finite and ≥ 0, `top_p` in (0, 1], repetition penalty
    /// finite and > 0. The error names the option and its value.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::data("generate", msg));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!(
                "temperature {} must be finite and ≥ 0 (0 is greedy)",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!(
                "repetition_penalty {} must be finite and > 0 (1 is off)",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// Picks the next token from one row of logits (the options already validated).
fn pick(logits: &mut [f32], seen: &[i64], opts: &GenerateOpts, g: &mut Generator) -> Result<i64> {
    if let Some(i) = logits
        .iter()
        .position(|l| l.is_nan() || *l == f32::INFINITY)
    {
        return Err(Error::data(
            "generate",
            format!(
                "the model produced a non-finite logit ({} for token {i}): its weights or \
                 inputs hold NaN or infinity",
                logits[i]
            ),
        ));
    }
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
    if opts.temperature == 0.0 {
        return Ok(argmax(logits));
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
            return Ok(idx[k] as i64);
        }
        u -= p;
    }
    Ok(idx[probs.len() - 1] as i64)
}

/// What a [`generate_with`] callback tells generation to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Choose the next token.
    Continue,
    /// Stop here (the token just passed is kept).
    Stop,
}

/// Continues `prompt`: one prefill forward over the prompt, then one cached forward per
/// token. Calls `on_token` with each new token as it is chosen; returns the new tokens.
///
/// The options are validated first. A prompt longer than the model's context
/// ([`CausalLm::max_positions`]) is an error (truncate it yourself, e.g. keep its last
/// tokens); generation stops early when the context fills up. [`generate_with`] takes a
/// callback that can stop generation or fail.
pub fn generate(
    model: &dyn CausalLm,
    prompt: &[i64],
    device: Device,
    opts: &GenerateOpts,
    mut on_token: impl FnMut(i64),
) -> Result<Vec<i64>> {
    generate_with(model, prompt, device, opts, |t| {
        on_token(t);
        Ok(Flow::Continue)
    })
}

/// [`generate`] with a callback that decides: [`Flow::Stop`] ends generation after the token,
/// an error ends it and is returned.
pub fn generate_with(
    model: &dyn CausalLm,
    prompt: &[i64],
    device: Device,
    opts: &GenerateOpts,
    mut on_token: impl FnMut(i64) -> Result<Flow>,
) -> Result<Vec<i64>> {
    if prompt.is_empty() {
        return Err(Error::data("generate", "the prompt is empty"));
    }
    opts.validate()?;
    let context = model.max_positions();
    if prompt.len() > context {
        return Err(Error::data(
            "generate",
            format!(
                "the prompt has {} tokens, more than the model's context of {context}",
                prompt.len()
            ),
        ));
    }
    let _guard = no_grad();
    let mut g = Generator::new(opts.seed);
    let mut cache = model.new_cache();
    let mut seen = prompt.to_vec();
    let mut out = Vec::new();
    let mut input = Tensor::from_vec(prompt.to_vec(), &[1, prompt.len()], device)?;
    let budget = opts.max_new_tokens.min(context - prompt.len() + 1);
    for _ in 0..budget {
        let logits = model.forward_last(&input, &mut cache)?; // (1, 1, V)
        let mut last = logits.reshape(&[-1])?.to_vec::<f32>()?;
        let next = pick(&mut last, &seen, opts, &mut g)?;
        let flow = on_token(next)?;
        out.push(next);
        seen.push(next);
        if flow == Flow::Stop || opts.stop_tokens.contains(&next) {
            break;
        }
        input = Tensor::from_vec(vec![next], &[1, 1], device)?;
    }
    Ok(out)
}
