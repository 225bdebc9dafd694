//! Stop strings as transformers' `StopStringCriteria` matches them: a stop string ends the
//! generation when it occurs in the text of the tokens so far with its end inside the last
//! token's text (the last token may run past it, earlier tokens may start before it).

use std::collections::HashMap;

use ember_core::Result;

use crate::Tokenizer;

/// Finds stop strings at the end of a token sequence, decoding each token once.
pub(crate) struct StopStrings<'a> {
    strings: &'a [String],
    longest: usize,
    tok: &'a Tokenizer,
    /// Ids of a fixed prefix decoded before each token, so a token's leading space survives
    /// (SentencePiece decoders drop it at the start of a text), as transformers does.
    prefix: Vec<i64>,
    prefix_text: String,
    texts: HashMap<i64, String>,
}

/// The text decoded before each token to learn its own text.
const PREFIX: &str = "abcdef";

impl<'a> StopStrings<'a> {
    /// A matcher of `strings` (non-empty, already validated) decoding with `tok`.
    pub(crate) fn new(strings: &'a [String], tok: &'a Tokenizer) -> Result<Self> {
        let prefix = tok.encode(PREFIX, false)?;
        let prefix_text = tok.decode(&prefix, false)?;
        Ok(StopStrings {
            strings,
            longest: strings.iter().map(String::len).max().unwrap_or(0),
            tok,
            prefix,
            prefix_text,
            texts: HashMap::new(),
        })
    }

    /// The text of one token as it reads after other text.
    fn text(&mut self, id: i64) -> Result<&str> {
        if !self.texts.contains_key(&id) {
            let mut ids = self.prefix.clone();
            ids.push(id);
            let full = self.tok.decode(&ids, false)?;
            let own = match full.strip_prefix(&self.prefix_text) {
                Some(rest) => rest.to_string(),
                None => self.tok.decode(&[id], false)?,
            };
            self.texts.insert(id, own);
        }
        Ok(&self.texts[&id])
    }

    /// True when a stop string ends inside the last token's text of `tokens`.
    pub(crate) fn matches(&mut self, tokens: &[i64]) -> Result<bool> {
        let Some((&last, earlier)) = tokens.split_last() else {
            return Ok(false);
        };
        let tail = self.text(last)?.to_string();
        if tail.is_empty() {
            return Ok(false);
        }
        // Earlier tokens' text, back to where a stop string ending in the last token can start.
        let mut head: Vec<String> = Vec::new();
        let mut head_len = 0;
        for &id in earlier.iter().rev() {
            if head_len >= self.longest {
                break;
            }
            let t = self.text(id)?.to_string();
            head_len += t.len();
            head.push(t);
        }
        let mut text: String = head.into_iter().rev().collect();
        let tail_start = text.len();
        text.push_str(&tail);
        Ok(self
            .strings
            .iter()
            .any(|s| ends_in_tail(&text, s, tail_start)))
    }
}

/// True when `s` occurs in `text` ending past byte `tail_start` (inside the last token).
fn ends_in_tail(text: &str, s: &str, tail_start: usize) -> bool {
    let Some(last_start) = text.len().checked_sub(s.len()) else {
        return false;
    };
    let first_start = (tail_start + 1).saturating_sub(s.len());
    (first_start..=last_start).any(|at| text.is_char_boundary(at) && text[at..].starts_with(s))
}

#[cfg(test)]
mod tests {
    use super::ends_in_tail;

    #[test]
    fn a_stop_string_must_end_in_the_last_token() {
        // tokens "las" + "topper" hold "stop" ending in the last token; "stop" + "at" do not
        assert!(ends_in_tail("lastopper", "stop", 3));
        assert!(ends_in_tail("stop", "stop", 0));
        assert!(ends_in_tail("stoppped", "stop", 3));
        assert!(!ends_in_tail("stopat", "stop", 4));
        assert!(ends_in_tail("aaa", "aa", 2));
        assert!(!ends_in_tail("a", "aa", 0));
    }
}
