//! Chat templates: a model's own Jinja template (`chat_template` in `tokenizer_config.json`,
//! `tokenizer.chat_template` in GGUF) rendered as transformers' `apply_chat_template` renders
//! it (trimmed and left-stripped blocks, Python's string methods, `tojson` with Python's
//! separators, `raise_exception`, `strftime_now`), with ChatML as the fallback.

use std::path::Path;

use ember_core::{Error, Result};
use ember_weights::{GgufFile, GgufValue};
use minijinja::value::Kwargs;
use minijinja::{Environment, ErrorKind, Value};
use serde_json::Value as Json;

use crate::tokenizer::chatml;

const OP: &str = "ChatTemplate";
/// Longest template source accepted (the largest published ones are ~20 KB).
const MAX_SOURCE: usize = 1 << 20;

/// A compiled chat template with the tokenizer's special tokens it may print.
///
/// ```
/// use ember_models::ChatTemplate;
/// let t = ChatTemplate::new(
///     "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\
///      {% if add_generation_prompt %}<assistant>{% endif %}",
/// )?;
/// assert_eq!(t.render(&[("user", "Hi")], true)?, "<user>Hi<assistant>");
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
    /// `bos_token`, `eos_token`, ... as the template sees them
    special: serde_json::Map<String, Json>,
}

fn template_error(e: minijinja::Error) -> Error {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::data(OP, msg)
}

impl ChatTemplate {
    /// Compiles `source` (a syntax error is an error naming the line).
    pub fn new(source: &str) -> Result<ChatTemplate> {
        if source.len() > MAX_SOURCE {
            return Err(Error::data(
                OP,
                format!("template of {} bytes exceeds {MAX_SOURCE}", source.len()),
            ));
        }
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string())
            .map_err(template_error)?;
        Ok(ChatTemplate {
            env,
            special: serde_json::Map::new(),
        })
    }

    /// With the special tokens the template may print (`bos_token`, `eos_token`).
    pub fn with_special_tokens(mut self, bos: Option<&str>, eos: Option<&str>) -> ChatTemplate {
        for (key, tok) in [("bos_token", bos), ("eos_token", eos)] {
            if let Some(t) = tok {
                self.special.insert(key.into(), Json::String(t.into()));
            }
        }
        self
    }

    /// The template of a `tokenizer_config.json` (`chat_template` as a string, or the one
    /// named `default` in a list), with its `bos_token`/`eos_token`; `None` when it has none.
    pub fn from_tokenizer_config(path: impl AsRef<Path>) -> Result<Option<ChatTemplate>> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| Error::Format {
            format: "tokenizer_config.json",
            path: path.display().to_string(),
            msg,
        };
        let cfg: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let source = match cfg.get("chat_template") {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Json::as_str))
                .ok_or_else(|| bad("chat_template list has no \"default\" template".into()))?
                .to_string(),
            Some(other) => return Err(bad(format!("chat_template is {other}"))),
        };
        let token = |key: &str| match cfg.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(String::from),
            _ => None,
        };
        let (bos, eos) = (token("bos_token"), token("eos_token"));
        Ok(Some(
            ChatTemplate::new(&source)?.with_special_tokens(bos.as_deref(), eos.as_deref()),
        ))
    }

    /// The template of a GGUF file (`tokenizer.chat_template`), with its BOS/EOS tokens;
    /// `None` when it has none.
    pub fn from_gguf(g: &GgufFile) -> Result<Option<ChatTemplate>> {
        let Some(source) = g
            .metadata
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
        else {
            return Ok(None);
        };
        let token = |key: &str| -> Option<String> {
            let id = g.metadata.get(&format!("tokenizer.ggml.{key}"))?.as_u64()?;
            match g.metadata.get("tokenizer.ggml.tokens")? {
                GgufValue::Array(t) => t.get(usize::try_from(id).ok()?)?.as_str().map(String::from),
                _ => None,
            }
        };
        let (bos, eos) = (token("bos_token_id"), token("eos_token_id"));
        Ok(Some(
            ChatTemplate::new(source)?.with_special_tokens(bos.as_deref(), eos.as_deref()),
        ))
    }

    /// Renders `(role, content)` messages; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<Json> = messages
            .iter()
            .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
            .collect();
        self.render_json(&Json::Array(messages), add_generation_prompt, &Json::Null)
    }

    /// Renders messages given as JSON (as transformers takes them: `role`, `content`,
    /// `tool_calls`, ...) with extra template arguments (`tools`, `enable_thinking`, ...;
    /// an object or null).
    pub fn render_json(
        &self,
        messages: &Json,
        add_generation_prompt: bool,
        extra: &Json,
    ) -> Result<String> {
        let mut ctx = self.special.clone();
        if let Some(e) = extra.as_object() {
            ctx.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        ctx.insert("messages".into(), messages.clone());
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        let t = self.env.get_template("chat").map_err(template_error)?;
        t.render(Value::from_serialize(&ctx))
            .map_err(template_error)
    }
}

/// A prompt for `messages`: the model's template when it has one, else ChatML.
pub fn chat_prompt(
    template: Option<&ChatTemplate>,
    messages: &[(&str, &str)],
    add_generation_prompt: bool,
) -> Result<String> {
    match template {
        Some(t) => t.render(messages, add_generation_prompt),
        None => Ok(chatml(messages, add_generation_prompt)),
    }
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`: `", "` and `": "`
/// separators on one line, newlines and indentation with `indent`.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &Json, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                write_json(x, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                out.push_str(&Json::String(k.clone()).to_string());
                out.push_str(": ");
                write_json(x, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `strftime_now(format)`: the current UTC date and time with `%Y %m %d %H %M %S %b %B %A %a %%`.
fn strftime_now(format: String) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let t = ember_core::clock::UtcTime::now();
    let month = MONTHS[(t.month - 1) as usize];
    let day = DAYS[t.weekday as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&t.year.to_string()),
            Some('m') => out.push_str(&format!("{:02}", t.month)),
            Some('d') => out.push_str(&format!("{:02}", t.day)),
            Some('H') => out.push_str(&format!("{:02}", t.hour)),
            Some('M') => out.push_str(&format!("{:02}", t.minute)),
            Some('S') => out.push_str(&format!("{:02}", t.second)),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('A') => out.push_str(day),
            Some('a') => out.push_str(&day[..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}
