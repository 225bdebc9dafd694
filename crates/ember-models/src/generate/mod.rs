//! Autoregressive generation with a KV cache: greedy or sampled (temperature, top-k, top-p),
//! with transformers' repetition penalty, n-gram ban, sequence bias, minimum length, stop
//! tokens and stop strings, a seed, and a callback per token.

mod options;
mod process;
mod stop;

pub use options::GenerateOpts;

use ember_core::{Device, Error, Generator, Result, Tensor, no_grad};
use ember_nn::KvCache;

use crate::{CausalLm, Tokenizer};
use process::Processor;
use stop::StopStrings;

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
/// an error ends it and is returned. Stop strings need a tokenizer: [`generate_text`].
pub fn generate_with(
    model: &dyn CausalLm,
    prompt: &[i64],
    device: Device,
    opts: &GenerateOpts,
    on_token: impl FnMut(i64) -> Result<Flow>,
) -> Result<Vec<i64>> {
    if !opts.stop_strings.is_empty() {
        return Err(Error::data(
            "generate",
            "stop_strings need the tokenizer to read the text: call generate_text",
        ));
    }
    let mut cache = model.new_cache();
    continue_cached(model, None, prompt, &mut cache, device, opts, on_token)
}

/// [`generate_with`] reading the text with `tokenizer`, so [`GenerateOpts::stop_strings`]
/// apply (transformers' `generate(..., stop_strings=, tokenizer=)`).
pub fn generate_text(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    prompt: &[i64],
    device: Device,
    opts: &GenerateOpts,
    on_token: impl FnMut(i64) -> Result<Flow>,
) -> Result<Vec<i64>> {
    let mut cache = model.new_cache();
    continue_cached(
        model,
        Some(tokenizer),
        prompt,
        &mut cache,
        device,
        opts,
        on_token,
    )
}

/// Generation after `tokens` when `cache` already holds the keys and values of their first
/// `cache[0].len()` positions (fewer than all of them): only the rest is prefilled. On
/// return the cache holds every token but the last one generated.
pub(crate) fn continue_cached(
    model: &dyn CausalLm,
    tokenizer: Option<&Tokenizer>,
    tokens: &[i64],
    cache: &mut [KvCache],
    device: Device,
    opts: &GenerateOpts,
    mut on_token: impl FnMut(i64) -> Result<Flow>,
) -> Result<Vec<i64>> {
    if tokens.is_empty() {
        return Err(Error::data("generate", "the prompt is empty"));
    }
    opts.validate()?;
    let context = model.max_positions();
    if tokens.len() > context {
        return Err(Error::data(
            "generate",
            format!(
                "the prompt has {} tokens, more than the model's context of {context}",
                tokens.len()
            ),
        ));
    }
    let cached = cache.first().map_or(0, KvCache::len);
    if cached >= tokens.len() {
        return Err(Error::data(
            "generate",
            format!(
                "the cache holds {cached} positions: at least one of the {} tokens must be new",
                tokens.len()
            ),
        ));
    }
    let mut stops = match (tokenizer, opts.stop_strings.is_empty()) {
        (Some(tok), false) => Some(StopStrings::new(&opts.stop_strings, tok)?),
        _ => None,
    };
    let _guard = no_grad();
    let mut g = Generator::new(opts.seed);
    let mut seen = tokens.to_vec();
    let mut out = Vec::new();
    let fresh = &tokens[cached..];
    let mut input = Tensor::from_vec(fresh.to_vec(), &[1, fresh.len()], device)?;
    let mut processor: Option<Processor> = None;
    let budget = opts.max_new_tokens.min(context - tokens.len() + 1);
    for _ in 0..budget {
        let logits = model.forward_last(&input, cache)?; // (1, 1, V)
        let mut last = logits.reshape(&[-1])?.to_vec::<f32>()?;
        let p = match &mut processor {
            Some(p) => p,
            None => processor.insert(Processor::new(opts, last.len(), tokens)?),
        };
        let next = p.next(&mut last, &seen, out.len(), &mut g)?;
        p.push(next);
        let flow = on_token(next)?;
        out.push(next);
        seen.push(next);
        let stopped = match &mut stops {
            Some(s) => s.matches(&seen)?,
            None => false,
        };
        if flow == Flow::Stop || stopped || opts.stop_tokens.contains(&next) {
            break;
        }
        input = Tensor::from_vec(vec![next], &[1, 1], device)?;
    }
    Ok(out)
}
