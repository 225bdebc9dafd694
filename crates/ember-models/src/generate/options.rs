//! What generation is asked to do, and the checks those options pass before anything runs.

use ember_core::{Error, Result};

/// Generation settings (greedy by default), checked by [`GenerateOpts::validate`] before
/// anything runs. Each has transformers' `generate` meaning and is applied in its order:
/// sequence bias, repetition penalty, n-gram ban, minimum length, then temperature, top-k and
/// top-p when sampling.
#[derive(Debug, Clone)]
pub struct GenerateOpts {
    /// Tokens to generate at most. Generation also stops when the model's context is full
    /// (prompt plus new tokens reach its positions).
    pub max_new_tokens: usize,
    /// Until this many tokens are generated the stop tokens cannot be chosen (transformers'
    /// `min_new_tokens`, which masks the EOS ids; here [`GenerateOpts::stop_tokens`]).
    pub min_new_tokens: usize,
    /// Softmax temperature: finite and ≥ 0; 0 means greedy (transformers' `do_sample=False`).
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 means no top-k filter (as transformers).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p: in (0, 1]; 1.0 keeps all.
    pub top_p: f64,
    /// Each distinct token already in the prompt or the output has its logit divided by this
    /// when positive, multiplied when negative, once however often it occurred (transformers'
    /// `repetition_penalty`); finite and > 0 (1.0: off).
    pub repetition_penalty: f64,
    /// No n-gram of this many tokens occurs twice in prompt plus output: a token that would
    /// complete one already seen is banned (transformers' `no_repeat_ngram_size`; 0: off).
    pub no_repeat_ngram_size: usize,
    /// Added to the logit of a sequence's last token whenever the tokens before it end the
    /// sequence so far (transformers' `sequence_bias`; a one-token sequence is a plain logit
    /// bias, `f32::NEG_INFINITY` bans it). Biases of one last token add up.
    pub sequence_bias: Vec<(Vec<i64>, f32)>,
    /// Stop after generating any of these.
    pub stop_tokens: Vec<i64>,
    /// Stop once the text ends in one of these, the last token holding at least its end
    /// (transformers' `stop_strings`; they need a tokenizer: [`crate::generate_text`]).
    pub stop_strings: Vec<String>,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for GenerateOpts {
    fn default() -> Self {
        GenerateOpts {
            max_new_tokens: 64,
            min_new_tokens: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            sequence_bias: Vec::new(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
        }
    }
}

/// Most sequence biases, stop strings or stop tokens accepted.
const MAX_ENTRIES: usize = 1 << 16;
/// Most tokens in one biased sequence, and most bytes in one stop string.
const MAX_ENTRY_LEN: usize = 4096;

impl GenerateOpts {
    /// Checks the options: temperature finite and ≥ 0, `top_p` in (0, 1], repetition penalty
    /// finite and > 0, biased sequences non-empty with non-negative ids and no NaN bias, stop
    /// strings non-empty, each list and entry of a bounded size. The error names the option
    /// and its value. Token ids past the vocabulary are found at the first step.
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
        for (what, n) in [
            ("sequence_bias", self.sequence_bias.len()),
            ("stop_strings", self.stop_strings.len()),
            ("stop_tokens", self.stop_tokens.len()),
        ] {
            if n > MAX_ENTRIES {
                return bad(format!("{what} has {n} entries, more than {MAX_ENTRIES}"));
            }
        }
        for (seq, bias) in &self.sequence_bias {
            if seq.is_empty() || seq.len() > MAX_ENTRY_LEN {
                return bad(format!(
                    "sequence_bias entry of {} tokens: each needs 1 to {MAX_ENTRY_LEN}",
                    seq.len()
                ));
            }
            if let Some(t) = seq.iter().find(|t| **t < 0) {
                return bad(format!("sequence_bias holds the negative token id {t}"));
            }
            if bias.is_nan() {
                return bad(format!("sequence_bias of {seq:?} is NaN"));
            }
        }
        if let Some(t) = self.stop_tokens.iter().find(|t| **t < 0) {
            return bad(format!("stop_tokens holds the negative token id {t}"));
        }
        for s in &self.stop_strings {
            if s.is_empty() || s.len() > MAX_ENTRY_LEN {
                return bad(format!(
                    "stop string of {} bytes: each needs 1 to {MAX_ENTRY_LEN}",
                    s.len()
                ));
            }
        }
        Ok(())
    }
}
