//! From one row of logits to the next token, in transformers' order: sequence bias,
//! repetition penalty, n-gram ban and minimum length change the logits; greedy takes the
//! largest, sampling applies temperature, top-k and top-p and draws.

use std::collections::HashMap;

use ember_core::{Error, Generator, Result};

use super::GenerateOpts;

/// The logits processors of one generation, with what they remember between steps.
pub(crate) struct Processor<'a> {
    opts: &'a GenerateOpts,
    vocab: usize,
    /// `seen[t]`: token `t` is in the prompt or the output.
    seen: Vec<bool>,
    /// The tokens marked in `seen`, each once.
    distinct: Vec<usize>,
}

impl<'a> Processor<'a> {
    /// Processors for a model of `vocab` logits, `tokens` the prompt. Biased tokens past the
    /// vocabulary are an error here, as in transformers.
    pub(crate) fn new(opts: &'a GenerateOpts, vocab: usize, tokens: &[i64]) -> Result<Self> {
        if let Some(t) = opts
            .sequence_bias
            .iter()
            .flat_map(|(seq, _)| seq)
            .find(|t| **t as u64 >= vocab as u64)
        {
            return Err(Error::data(
                "generate",
                format!("sequence_bias names token {t}, past the model's vocabulary of {vocab}"),
            ));
        }
        let mut p = Processor {
            opts,
            vocab,
            seen: vec![false; vocab],
            distinct: Vec::new(),
        };
        tokens.iter().for_each(|&t| p.push(t));
        Ok(p)
    }

    /// Records a token of the sequence.
    pub(crate) fn push(&mut self, t: i64) {
        if let Some(s) = usize::try_from(t).ok().and_then(|i| self.seen.get_mut(i))
            && !*s
        {
            *s = true;
            self.distinct.push(t as usize);
        }
    }

    /// Picks the next token after `tokens` (prompt and output so far, `new` of them generated)
    /// from their logits.
    pub(crate) fn next(
        &self,
        logits: &mut [f32],
        tokens: &[i64],
        new: usize,
        g: &mut Generator,
    ) -> Result<i64> {
        if logits.len() != self.vocab {
            return Err(Error::data(
                "generate",
                format!("{} logits, the first step had {}", logits.len(), self.vocab),
            ));
        }
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
        self.sequence_bias(logits, tokens);
        self.repetition_penalty(logits);
        self.no_repeat_ngram(logits, tokens);
        if new < self.opts.min_new_tokens {
            for &t in &self.opts.stop_tokens {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        pick(logits, self.opts, g)
    }

    /// transformers' `SequenceBiasLogitsProcessor`: the biases summed per token, then added.
    fn sequence_bias(&self, logits: &mut [f32], tokens: &[i64]) {
        if self.opts.sequence_bias.is_empty() {
            return;
        }
        let mut bias: HashMap<usize, f32> = HashMap::new();
        for (seq, b) in &self.opts.sequence_bias {
            let (last, prefix) = seq.split_last().expect("validated non-empty");
            if tokens.ends_with(prefix) {
                *bias.entry(*last as usize).or_insert(0.0) += b;
            }
        }
        for (t, b) in bias {
            logits[t] += b;
        }
    }

    /// transformers' `RepetitionPenaltyLogitsProcessor`: every distinct seen token once.
    fn repetition_penalty(&self, logits: &mut [f32]) {
        let penalty = self.opts.repetition_penalty as f32;
        if self.opts.repetition_penalty == 1.0 {
            return;
        }
        for &t in &self.distinct {
            let l = &mut logits[t];
            *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
        }
    }

    /// transformers' `NoRepeatNGramLogitsProcessor`: each earlier n-gram whose first n - 1
    /// tokens are the sequence's last n - 1 bans its last token.
    fn no_repeat_ngram(&self, logits: &mut [f32], tokens: &[i64]) {
        let n = self.opts.no_repeat_ngram_size;
        if n == 0 || tokens.len() < n {
            return;
        }
        let prefix = &tokens[tokens.len() + 1 - n..];
        for window in tokens.windows(n) {
            if window[..n - 1] == *prefix
                && let Some(l) = logits.get_mut(window[n - 1] as usize)
            {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// The next token from processed logits: the first largest when greedy, else a draw after
/// temperature, top-k and top-p (the options already validated).
fn pick(logits: &[f32], opts: &GenerateOpts, g: &mut Generator) -> Result<i64> {
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
    if max == f64::NEG_INFINITY {
        return Err(Error::data(
            "generate",
            "every token is banned (sequence bias, n-gram ban or minimum length): there is \
             nothing to sample",
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(f: impl FnOnce(&mut GenerateOpts)) -> GenerateOpts {
        let mut o = GenerateOpts::default();
        f(&mut o);
        o
    }

    fn run(o: &GenerateOpts, tokens: &[i64], logits: &[f32]) -> Vec<f32> {
        let p = Processor::new(o, logits.len(), tokens).unwrap();
        let mut l = logits.to_vec();
        p.sequence_bias(&mut l, tokens);
        p.repetition_penalty(&mut l);
        p.no_repeat_ngram(&mut l, tokens);
        l
    }

    #[test]
    fn repetition_penalty_applies_once_per_distinct_token() {
        let o = opts(|o| o.repetition_penalty = 2.0);
        let l = run(&o, &[1, 1, 1, 3], &[1.0, 4.0, 4.0, -4.0]);
        assert_eq!(l, [1.0, 2.0, 4.0, -8.0]);
    }

    #[test]
    fn ngram_ban_matches_the_last_tokens() {
        let o = opts(|o| o.no_repeat_ngram_size = 2);
        // bigrams (1,2), (2,1), (1,3), (3,1): the sequence ends in 1, so 2 and 3 are banned
        let l = run(&o, &[1, 2, 1, 3, 1], &[0.0; 5]);
        assert_eq!(l, [0.0, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY, 0.0]);
        let o = opts(|o| o.no_repeat_ngram_size = 6);
        assert_eq!(run(&o, &[1, 2, 1, 3, 1], &[0.0; 5]), [0.0; 5]);
    }

    #[test]
    fn sequence_bias_needs_its_prefix() {
        let o = opts(|o| o.sequence_bias = vec![(vec![2], 1.5), (vec![4, 3], -2.0)]);
        assert_eq!(run(&o, &[0, 4], &[0.0; 5]), [0.0, 0.0, 1.5, -2.0, 0.0]);
        assert_eq!(run(&o, &[4, 0], &[0.0; 5]), [0.0, 0.0, 1.5, 0.0, 0.0]);
        let far = opts(|o| o.sequence_bias = vec![(vec![7], 1.0)]);
        assert!(Processor::new(&far, 5, &[]).is_err());
    }

    #[test]
    fn min_new_tokens_masks_the_stop_tokens() {
        let o = opts(|o| {
            o.min_new_tokens = 2;
            o.stop_tokens = vec![1];
        });
        let p = Processor::new(&o, 3, &[0]).unwrap();
        let mut g = Generator::new(0);
        assert_eq!(p.next(&mut [0.0, 9.0, 1.0], &[0], 0, &mut g).unwrap(), 2);
        assert_eq!(
            p.next(&mut [0.0, 9.0, 1.0], &[0, 2, 2], 2, &mut g).unwrap(),
            1
        );
    }
}
