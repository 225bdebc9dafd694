//! Tokenizers: Hugging Face `tokenizer.json` files through the `tokenizers` crate, GPT-2
//! style BPE vocabularies embedded in GGUF files, and the ChatML chat template.

use std::path::Path;

use ember_core::{Device, Error, Result, Tensor};
use ember_weights::GgufFile;

mod gguf;

pub(crate) fn tk_err(op: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Data {
        op,
        msg: e.to_string(),
    }
}

/// Runs `f`, a call into the `tokenizers` crate, with a panic of that crate turned into an
/// error: its deserializers `expect` in places, so a hostile file can make it panic (the
/// fuzz target `tokenizer_json` found one in the decoder section).
pub(crate) fn guarded<T>(op: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(tk_err(
            op,
            format!("the tokenizers crate failed on this input: {msg}"),
        ))
    })
}

/// The largest `tokenizer.json` accepted (Gemma 3's, with 262 144 tokens, is 33 MB).
const MAX_TOKENIZER_FILE: u64 = 256 << 20;

/// A text tokenizer. Padding and truncation are off unless the caller asks for them.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Loads a `tokenizer.json`, switching off any padding or truncation it carries (all-MiniLM
    /// pads every input to 128 tokens).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        match ember_weights::file_kind(path) {
            ember_weights::FileKind::Gguf => {
                return Err(Error::Format {
                    format: "tokenizer.json",
                    path: path.display().to_string(),
                    msg: "this is a GGUF file: its tokenizer loads with Tokenizer::from_gguf(&GgufFile::open(path)?)".into(),
                });
            }
            kind @ ember_weights::FileKind::Directory { .. } => {
                return Err(Error::Format {
                    format: "tokenizer.json",
                    path: path.display().to_string(),
                    msg: format!(
                        "Tokenizer::from_file takes the tokenizer.json file, not a directory (this is {})",
                        kind.advice()
                    ),
                });
            }
            _ => {}
        }
        let text = ember_weights::read_text(path, MAX_TOKENIZER_FILE, "tokenizer.json")?;
        Tokenizer::parse(&text, &path.display().to_string())
    }

    /// A `tokenizer.json` held in memory (a download, as in the browser), checked as
    /// [`Tokenizer::from_file`] checks a file; `name` stands for the path in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Tokenizer> {
        if bytes.len() as u64 > MAX_TOKENIZER_FILE {
            return Err(Error::Format {
                format: "tokenizer.json",
                path: name.to_string(),
                msg: format!(
                    "{} bytes is more than the {MAX_TOKENIZER_FILE} a tokenizer.json may have",
                    bytes.len()
                ),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Format {
            format: "tokenizer.json",
            path: name.to_string(),
            msg: format!("not UTF-8: {e}"),
        })?;
        Tokenizer::parse(text, name)
    }

    fn parse(text: &str, path: &str) -> Result<Tokenizer> {
        let parse = || {
            text.parse::<tokenizers::Tokenizer>()
                .map_err(|e| Error::Format {
                    format: "tokenizer.json",
                    path: path.to_string(),
                    msg: e.to_string(),
                })
        };
        let mut inner = guarded("Tokenizer::from_file", parse)?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| tk_err("Tokenizer::from_file", e))?;
        Ok(Tokenizer { inner })
    }

    /// Builds the tokenizer a GGUF file describes, as transformers does when it loads the
    /// file: byte-level BPE (`tokenizer.ggml.model = gpt2`) or SentencePiece
    /// (`tokenizer.ggml.model = llama`: scores, byte fallback; merges recovered from the
    /// vocabulary). Control tokens are special, user-defined tokens matched whole.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
        Ok(Tokenizer {
            inner: guarded("Tokenizer::from_gguf", || gguf::build(g))?,
        })
    }

    /// Token ids of `text`; `add_special` adds the tokenizer's BOS/CLS/SEP as it defines.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<i64>> {
        let enc = guarded("Tokenizer::encode", || {
            self.inner
                .encode(text, add_special)
                .map_err(|e| tk_err("Tokenizer::encode", e))
        })?;
        Ok(enc.get_ids().iter().map(|&i| i as i64).collect())
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        guarded("Tokenizer::decode", || {
            self.inner
                .decode(&ids, skip_special)
                .map_err(|e| tk_err("Tokenizer::decode", e))
        })
    }

    /// Writes the tokenizer as a Hugging Face `tokenizer.json` (what `from_file` and
    /// transformers' `AutoTokenizer` read).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.inner
            .save(path, false)
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
    }

    /// The id of a token string, e.g. `<|im_end|>`.
    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(|i| i as i64)
    }

    /// Encodes several texts and pads them to the longest with `pad_id`: ids and attention
    /// mask, both `(B, T)` I64.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        add_special: bool,
        pad_id: i64,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        let encoded: Vec<Vec<i64>> = texts
            .iter()
            .map(|t| self.encode(t, add_special))
            .collect::<Result<_>>()?;
        let t = encoded.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for e in &encoded {
            ids.extend(
                e.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, t - e.len())),
            );
            mask.extend((0..t).map(|i| i64::from(i < e.len())));
        }
        let shape = [texts.len(), t];
        Ok((
            Tensor::from_vec(ids, &shape, device)?,
            Tensor::from_vec(mask, &shape, device)?,
        ))
    }
}

/// Turns generated token ids into text as they arrive, for streaming to a terminal: each
/// [`TextStream::push`] returns the text the new token completes. A character may span
/// several tokens: its bytes are held back until it is whole, never printed as U+FFFD, and
/// nothing is dropped: the pushes' pieces followed by [`TextStream::finish`] concatenate to
/// the decode of all the ids.
///
/// ```no_run
/// # use ember_models::{TextStream, Tokenizer};
/// let tok = Tokenizer::from_file("tokenizer.json")?;
/// let mut stream = TextStream::new(&tok);
/// for id in [15496, 11, 995] {
///     print!("{}", stream.push(id)?);
/// }
/// print!("{}", stream.finish()?);
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    ids: Vec<i64>,
    /// The ids before `read` were printed; those from `prefix` on are decoded again for
    /// context (a tokenizer may decode a token differently after another one).
    prefix: usize,
    read: usize,
}

impl<'a> TextStream<'a> {
    /// An empty stream decoding with `tok` (special tokens skipped).
    pub fn new(tok: &'a Tokenizer) -> TextStream<'a> {
        TextStream {
            tok,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds a token; returns the text it completes (empty while a character is incomplete).
    pub fn push(&mut self, id: i64) -> Result<String> {
        self.ids.push(id);
        let before = self.tok.decode(&self.ids[self.prefix..self.read], true)?;
        let now = self.tok.decode(&self.ids[self.prefix..], true)?;
        let complete = !now.ends_with('\u{FFFD}');
        match now.get(before.len()..) {
            Some(new) if complete && now.starts_with(&before) && !new.is_empty() => {
                let new = new.to_string();
                (self.prefix, self.read) = (self.read, self.ids.len());
                Ok(new)
            }
            _ => Ok(String::new()),
        }
    }

    /// The text not printed yet (an incomplete character at the end as U+FFFD); the stream
    /// is then empty.
    pub fn finish(&mut self) -> Result<String> {
        let before = self.tok.decode(&self.ids[self.prefix..self.read], true)?;
        let now = self.tok.decode(&self.ids[self.prefix..], true)?;
        let rest = match now.get(before.len()..) {
            Some(rest) if now.starts_with(&before) => rest.to_string(),
            // A decode that rewrote its context: print everything after the printed ids.
            _ => self.tok.decode(&self.ids[self.read..], true)?,
        };
        self.ids.clear();
        (self.prefix, self.read) = (0, 0);
        Ok(rest)
    }
}

/// The ChatML prompt (SmolLM2, Qwen): `<|im_start|>role\ncontent<|im_end|>\n` per message,
/// then `<|im_start|>assistant\n` when `add_generation_prompt`.
pub fn chatml(messages: &[(&str, &str)], add_generation_prompt: bool) -> String {
    let mut s = String::new();
    for (role, content) in messages {
        s.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
    }
    if add_generation_prompt {
        s.push_str("<|im_start|>assistant\n");
    }
    s
}
