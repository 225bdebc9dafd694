//! What minijinja does while it compiles a template, bounded before it starts.
//!
//! Compiling is not covered by the render budget, and two things in it are unbounded: its
//! code generator recurses along expressions (a chain of 100 000 `~`, `|trim` or `not`, or as
//! many `elif`s, overflows the stack and aborts the process), and it folds constant
//! expressions (`'x' * 100000000 ~ 'x' * 100000000` becomes one 200 MB constant before
//! anything runs). So before a template is compiled its tokens are counted (at most
//! [`MAX_TAG_TOKENS`] in one `{{ }}` or `{% %}`, at most [`MAX_ELIFS`] branches in one `if`:
//! minijinja's own limit of 150 then bounds the rest of the nesting), and every constant
//! expression of its syntax tree is sized, without evaluating it, against the limit on one
//! value.

use minijinja::machinery::{self, Token, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use serde_json::Value as Json;

/// Tokens one tag may hold (real templates use well under 100).
pub(super) const MAX_TAG_TOKENS: usize = 512;
/// `elif` branches one `if` may have.
pub(super) const MAX_ELIFS: usize = 256;

/// minijinja's default delimiters (a unit struct unless some crate turns on `custom_syntax`).
#[allow(clippy::default_constructed_unit_structs)]
fn syntax() -> SyntaxConfig {
    SyntaxConfig::default()
}

fn whitespace() -> WhitespaceConfig {
    WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    }
}

/// `Err` with the reason when compiling `source` could exhaust the stack or fold a constant
/// larger than `value_bytes`.
pub(super) fn check(source: &str, value_bytes: usize) -> Result<(), String> {
    check_tokens(source)?;
    let ast =
        machinery::parse(source, "chat", syntax(), whitespace()).map_err(|e| e.to_string())?;
    let tree = serde_json::to_value(&ast).map_err(|e| e.to_string())?;
    check_constants(&tree, value_bytes as u128)
}

fn check_tokens(source: &str) -> Result<(), String> {
    let mut in_tag = 0usize;
    // `elif`s of each `if` open around this point.
    let mut ifs: Vec<usize> = Vec::new();
    let mut after_block_start = false;
    for token in machinery::tokenize(source, false, syntax(), whitespace()) {
        let (token, _) = token.map_err(|e| e.to_string())?;
        match token {
            Token::VariableStart | Token::BlockStart => in_tag = 0,
            Token::VariableEnd | Token::BlockEnd | Token::TemplateData(_) => {}
            _ => {
                in_tag += 1;
                if in_tag > MAX_TAG_TOKENS {
                    return Err(format!(
                        "a tag of more than {MAX_TAG_TOKENS} tokens (an expression that long \
                         would exhaust the compiler's stack)"
                    ));
                }
            }
        }
        if after_block_start && let Token::Ident(keyword) = token {
            match keyword {
                "if" => ifs.push(0),
                "endif" => {
                    ifs.pop();
                }
                "elif" => {
                    let n = ifs.last_mut().ok_or("elif outside of an if")?;
                    *n += 1;
                    if *n > MAX_ELIFS {
                        return Err(format!("an if with more than {MAX_ELIFS} elif branches"));
                    }
                }
                _ => {}
            }
        }
        after_block_start = matches!(token, Token::BlockStart);
    }
    Ok(())
}

/// A constant expression as the compiler folds it, sized instead of computed.
#[derive(Clone, Copy)]
enum Folded {
    Int(i128),
    /// A string, list or map of about this many bytes.
    Bytes(u128),
}

impl Folded {
    fn bytes(self) -> u128 {
        match self {
            Folded::Int(_) => 40,
            Folded::Bytes(b) => b,
        }
    }
}

/// The node's payload: `{"expr": kind, "inner": [payload, span]}`.
fn payload(e: &Json) -> Option<&Json> {
    e.get("inner")?.get(0)
}

/// What the compiler folds expression node `e` into, or `None` when it does not fold it.
fn fold(e: &Json) -> Option<Folded> {
    let p = payload(e)?;
    Some(match e.get("expr")?.as_str()? {
        "Const" => match p.get("value")? {
            Json::Number(n) => n
                .as_i64()
                .map_or(Folded::Bytes(8), |v| Folded::Int(v.into())),
            Json::String(s) => Folded::Bytes(s.len() as u128),
            other => Folded::Bytes(other.to_string().len() as u128),
        },
        "List" => {
            let mut sum = 0u128;
            for item in p.get("items")?.as_array()? {
                sum = sum.saturating_add(fold(item)?.bytes() + 8);
            }
            Folded::Bytes(sum)
        }
        "Map" => {
            let mut sum = 0u128;
            for key in ["keys", "values"] {
                for item in p.get(key)?.as_array()? {
                    sum = sum.saturating_add(fold(item)?.bytes() + 8);
                }
            }
            Folded::Bytes(sum)
        }
        "UnaryOp" => match fold(p.get("expr")?)? {
            Folded::Int(v) if p.get("op")? == "Neg" => Folded::Int(v.saturating_neg()),
            _ => Folded::Bytes(8),
        },
        "BinOp" => {
            let (l, r) = (fold(p.get("left")?)?, fold(p.get("right")?)?);
            let repeat = |size: u128, n: i128| Folded::Bytes(size.saturating_mul(n.max(0) as u128));
            match (p.get("op")?.as_str()?, l, r) {
                ("Mul", Folded::Int(a), Folded::Int(b)) => Folded::Int(a.saturating_mul(b)),
                ("Mul", Folded::Bytes(s), Folded::Int(n))
                | ("Mul", Folded::Int(n), Folded::Bytes(s)) => repeat(s, n),
                ("Pow", Folded::Int(a), Folded::Int(b)) => {
                    Folded::Int(a.saturating_pow(b.clamp(0, 200) as u32))
                }
                ("Add" | "Sub", Folded::Int(a), Folded::Int(b)) => {
                    Folded::Int(a.saturating_add(b.abs()))
                }
                ("Add" | "Concat", l, r) => Folded::Bytes(l.bytes().saturating_add(r.bytes())),
                (_, Folded::Int(a), Folded::Int(_)) => Folded::Int(a),
                _ => Folded::Bytes(8),
            }
        }
        "Compare" => Folded::Bytes(8),
        _ => return None,
    })
}

/// Fails when an expression node anywhere in the tree folds into more than `limit` bytes.
fn check_constants(node: &Json, limit: u128) -> Result<(), String> {
    match node {
        Json::Object(o) => {
            if o.get("expr").is_some_and(Json::is_string)
                && let Some(f) = fold(node)
                && f.bytes() > limit
            {
                return Err(format!(
                    "a constant expression of about {} bytes (limit {limit})",
                    f.bytes()
                ));
            }
            o.values().try_for_each(|v| check_constants(v, limit))
        }
        Json::Array(a) => a.iter().try_for_each(|v| check_constants(v, limit)),
        _ => Ok(()),
    }
}
