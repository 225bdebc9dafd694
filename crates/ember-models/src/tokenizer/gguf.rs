//! Tokenizers from GGUF metadata, built as transformers builds them from the same file:
//! byte-level BPE with the file's merges, or SentencePiece-style BPE whose merges are
//! recovered from the vocabulary (ordered by score, or for Gemma by position).

use ember_core::{Error, Result};
use ember_weights::{GgufFile, GgufValue};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper};

use super::tk_err;

const OP: &str = "Tokenizer::from_gguf";
/// SentencePiece's word-boundary mark.
const SPACE: char = '\u{2581}';

/// What the metadata says about the vocabulary.
struct Meta {
    arch: String,
    tokens: Vec<String>,
    types: Vec<u64>,
}

fn bad(what: String) -> Error {
    Error::data(OP, format!("GGUF metadata: {what}"))
}

fn strings(g: &GgufFile, key: &str) -> Result<Vec<String>> {
    match g.metadata.get(key) {
        Some(GgufValue::Array(v)) => v
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("{key} holds a non-string")))
            })
            .collect(),
        _ => Err(bad(format!("{key} is missing"))),
    }
}

fn flag(g: &GgufFile, key: &str) -> Option<bool> {
    match g.metadata.get(key) {
        Some(GgufValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// The tokenizer of `g`.
pub(super) fn build(g: &GgufFile) -> Result<tokenizers::Tokenizer> {
    let model = g
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(GgufValue::as_str);
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let types: Vec<u64> = match g.metadata.get("tokenizer.ggml.token_type") {
        Some(GgufValue::Array(v)) => v.iter().map(|x| x.as_u64().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let arch = g
        .metadata
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("")
        .to_string();
    let meta = Meta {
        arch,
        tokens,
        types,
    };
    let mut inner = match model {
        Some("gpt2") => byte_level(g, &meta)?,
        Some("llama") => sentencepiece(g, &meta)?,
        other => {
            return Err(bad(format!(
                "tokenizer model {other:?} is not supported (gpt2 and llama are)"
            )));
        }
    };
    add_tokens(&mut inner, &meta);
    Ok(inner)
}

/// Byte-level BPE: the file's merges, digits split one by one (the `smollm`, `llama-bpe` and
/// `qwen2` pre-tokenizers do this) before the GPT-2 regex.
fn byte_level(g: &GgufFile, meta: &Meta) -> Result<tokenizers::Tokenizer> {
    let merges: Vec<(String, String)> = strings(g, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| bad(format!("merge {m:?} has no space")))
        })
        .collect::<Result<_>>()?;
    let vocab: Vocab = meta
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| tk_err(OP, e))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let pre: Vec<PreTokenizerWrapper> = vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ];
    inner.with_pre_tokenizer(Some(Sequence::new(pre)));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(inner)
}

/// SentencePiece-style BPE with byte fallback. Gemma files spell whitespace tokens with real
/// spaces and list their tokens in merge order (their scores do not follow it); the others
/// rank merges by score. A space prefix (`add_space_prefix`, default on) is Metaspace's.
fn sentencepiece(g: &GgufFile, meta: &Meta) -> Result<tokenizers::Tokenizer> {
    let gemma = meta.arch.starts_with("gemma");
    let tokens: Vec<String> = if gemma {
        meta.tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.trim().is_empty() {
                    SPACE.to_string().repeat(t.chars().count())
                } else {
                    t.clone()
                }
            })
            .collect()
    } else {
        meta.tokens.clone()
    };
    let scores: Vec<f64> = if gemma {
        (0..tokens.len()).map(|i| -(i as f64)).collect()
    } else {
        match g.metadata.get("tokenizer.ggml.scores") {
            Some(GgufValue::Array(v)) if v.len() == tokens.len() => {
                v.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect()
            }
            _ => return Err(bad("tokenizer.ggml.scores is missing or short".into())),
        }
    };
    let merges = recovered_merges(&tokens, &scores);
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let token_of = |key: &str| {
        g.metadata
            .get(&format!("tokenizer.ggml.{key}"))
            .and_then(GgufValue::as_u64)
            .and_then(|i| tokens.get(usize::try_from(i).ok()?))
            .cloned()
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = token_of("unknown_token_id") {
        builder = builder.unk_token(unk);
    }
    let bpe = builder.build().map_err(|e| tk_err(OP, e))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let prefix = flag(g, "tokenizer.ggml.add_space_prefix").unwrap_or(!gemma);
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE.to_string(), " ")
            .map_err(|e| tk_err(OP, e))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    let space = Replace::new(" ", SPACE.to_string()).map_err(|e| tk_err(OP, e))?;
    if gemma {
        inner.with_normalizer(Some(space));
    } else if meta.arch == "phi3" {
        // transformers: the prefix comes from a normalizer for Phi-3
        let seq: Vec<NormalizerWrapper> =
            vec![Prepend::new(SPACE.to_string()).into(), space.into()];
        inner.with_normalizer(Some(tokenizers::normalizers::Sequence::new(seq)));
        decoders.push(Strip::new(' ', 1, 0).into());
    } else {
        let scheme = if prefix {
            PrependScheme::First
        } else {
            PrependScheme::Never
        };
        inner.with_pre_tokenizer(Some(Metaspace::new(SPACE, scheme, false)));
        if prefix {
            decoders.push(Strip::new(' ', 1, 0).into());
        }
    }
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    let add_bos = flag(g, "tokenizer.ggml.add_bos_token").unwrap_or(true);
    let add_eos = flag(g, "tokenizer.ggml.add_eos_token").unwrap_or(false);
    let (bos, eos) = (token_of("bos_token_id"), token_of("eos_token_id"));
    let mut single = Vec::new();
    let mut special = Vec::new();
    for (on, tok) in [(add_bos, &bos), (add_eos, &eos)] {
        if let (true, Some(t)) = (on, tok) {
            let id = tokens.iter().position(|x| x == t).unwrap_or(0) as u32;
            special.push((t.clone(), id));
        }
    }
    if add_bos && let Some(b) = &bos {
        single.push(b.clone());
    }
    single.push("$A".to_string());
    if add_eos && let Some(e) = &eos {
        single.push(e.clone());
    }
    if !special.is_empty() {
        let post = TemplateProcessing::builder()
            .try_single(single.join(" "))
            .map_err(|e| tk_err(OP, e))?
            .special_tokens(special)
            .build()
            .map_err(|e| tk_err(OP, e))?;
        inner.with_post_processor(Some(post));
    }
    Ok(inner)
}

/// Merges recovered from a vocabulary as transformers does: every split of a token into two
/// tokens, grouped by token (the splits ordered by the pieces' ids), then ranked by the
/// token's score, longer left and right pieces first, best first (stable).
fn recovered_merges(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    // Later duplicates win the id, earlier ones keep their place (a Python dict's rules).
    let mut id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut score: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        if id.insert(t.as_str(), i).is_none() {
            order.push(t.as_str());
        }
        score.insert(t.as_str(), scores[i]);
    }
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for &t in &order {
        let s = score[t];
        let mut local: Vec<(&str, &str)> = t
            .char_indices()
            .skip(1)
            .map(|(at, _)| t.split_at(at))
            .filter(|(l, r)| id.contains_key(l) && id.contains_key(r))
            .collect();
        local.sort_by_key(|(l, r)| (id[l], id[r]));
        merges.extend(local.into_iter().map(|(l, r)| (l, r, s)));
    }
    let key = |m: &(&str, &str, f64)| (m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| key(b).cmp(&key(a))));
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// Control tokens (type 3) as special tokens, user-defined ones (type 4) that the vocabulary
/// holds as added tokens matched whole.
fn add_tokens(inner: &mut tokenizers::Tokenizer, meta: &Meta) {
    let typed = |ty: u64| {
        meta.tokens
            .iter()
            .zip(&meta.types)
            .filter(move |(_, t)| **t == ty)
            .map(|(tok, _)| tok.clone())
    };
    let special: Vec<AddedToken> = typed(3)
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    inner.add_special_tokens(&special);
    // Only those the vocabulary spells so (Gemma's whitespace tokens were respelled).
    let user: Vec<AddedToken> = typed(4)
        .filter(|t| inner.token_to_id(t).is_some())
        .map(|t| AddedToken::from(t, false).normalized(false))
        .collect();
    inner.add_tokens(&user);
}
