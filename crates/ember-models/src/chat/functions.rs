//! The functions and filters chat templates get besides minijinja's: transformers' `tojson`
//! and `strftime_now`, and bounded versions of the builtins whose result can outgrow their
//! input many times over (`replace`, `join`, `split`, `format`, `indent`, `sum`, `list`, and
//! the same Python string methods), each checking the size of its result before building it.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, StringInput, ValueKind, from_args};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use serde_json::Value as Json;

use super::sandbox::current_limits;

/// The widest field a format string may ask for (`%5000s`, `{:>5000}`).
const MAX_WIDTH: u64 = 4096;
/// The deepest `tojson` indentation accepted.
const MAX_INDENT: usize = 64;

/// Makes transformers' functions and the bounded builtins known to `env` (the bounded ones
/// replace minijinja's of the same name).
pub(super) fn install(env: &mut Environment<'static>) {
    env.set_unknown_method_callback(methods);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", strftime_now);
    env.add_filter("replace", replace);
    env.add_filter("join", join);
    env.add_filter("split", split);
    env.add_filter("lines", lines);
    env.add_filter("format", format);
    env.add_filter("indent", indent);
    env.add_filter("sum", sum);
    env.add_filter("list", list);
}

fn too_large(what: &str, size: u128, limit: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} would hold {size} (limit {limit})"),
    )
}

/// `value` as a string, as Jinja converts it.
fn text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value.as_str() {
        Some(s) => s.into(),
        None => value.to_string().into(),
    }
}

/// Fails when replacing `n` occurrences of `old` by `new` in `s` gives too long a string.
fn check_replace(s: &str, old: &str, new: &str, count: Option<usize>) -> Result<(), Error> {
    let found = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old).count()
    };
    let n = count.map_or(found, |c| c.min(found)) as u128;
    let len = s.len() as u128 - n * old.len() as u128 + n * new.len() as u128;
    let limit = current_limits().value_bytes;
    if len > limit as u128 {
        return Err(too_large("the replaced string", len, limit));
    }
    Ok(())
}

/// Fails when joining `items` with `sep` gives too long a string.
fn check_join(items: &Value, sep: &str) -> Result<(), Error> {
    let limit = current_limits().value_bytes;
    let mut len = 0u128;
    for (i, item) in items.try_iter()?.enumerate() {
        if i > 0 {
            len += sep.len() as u128;
        }
        len += match item.as_str() {
            Some(s) => s.len(),
            None => {
                let mut c = Counted(0);
                let _ = write!(c, "{item}");
                c.0
            }
        } as u128;
        if len > limit as u128 {
            return Err(too_large("the joined string", len, limit));
        }
    }
    Ok(())
}

/// Counts the bytes written.
struct Counted(usize);

impl std::fmt::Write for Counted {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Fails when splitting gives more pieces than a value may hold.
fn check_pieces(pieces: usize) -> Result<(), Error> {
    let limit = current_limits().value_items;
    if pieces > limit {
        return Err(too_large("the split", pieces as u128, limit));
    }
    Ok(())
}

/// Pieces of `s` split at `sep` (at whitespace runs without one).
fn pieces(s: &str, sep: Option<&str>) -> usize {
    match sep {
        Some(sep) if !sep.is_empty() => s.matches(sep).count() + 1,
        _ => s.split_whitespace().count() + 1,
    }
}

/// Refuses widths and precisions above [`MAX_WIDTH`] in a format string, printf-style
/// (`%10.3f`) or `str.format`-style (`{:>10}`), before either allocates them.
fn check_widths(f: &str) -> Result<(), Error> {
    let mut specs: Vec<&str> = Vec::new();
    let b = f.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let end = b[i + 1..]
                    .iter()
                    .position(|c| !b"-+ #0123456789.*".contains(c))
                    .map_or(b.len(), |p| i + 1 + p);
                specs.push(&f[i + 1..end]);
                i = end;
            }
            b'{' => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .map_or(b.len(), |p| i + p);
                if let Some(colon) = f[i..end].find(':') {
                    specs.push(&f[i + colon + 1..end]);
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    for spec in specs {
        for run in spec.split(|c: char| !c.is_ascii_digit()) {
            if !run.is_empty() && run.len() > 9 || run.parse::<u64>().is_ok_and(|w| w > MAX_WIDTH) {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("a format width of {run} exceeds {MAX_WIDTH}"),
                ));
            }
        }
    }
    Ok(())
}

/// Python's string methods (minijinja-contrib's), with the ones that can outgrow their input
/// sized first.
fn methods(state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "replace" => {
                let (old, new, count): (&str, &str, Option<i64>) = from_args(args)?;
                let count = count.and_then(|c| usize::try_from(c).ok());
                check_replace(s, old, new, count)?;
            }
            "join" => {
                let (items,): (Value,) = from_args(args)?;
                check_join(&items, s)?;
            }
            "format" => check_widths(s)?,
            "split" | "rsplit" => {
                let sep: Option<&str> = args.first().and_then(Value::as_str);
                check_pieces(pieces(s, sep))?;
            }
            "splitlines" => check_pieces(s.lines().count() + 1)?,
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// `replace(old, new)`, sized first.
fn replace(value: Value, old: String, new: String) -> Result<Value, Error> {
    let s = text(&value);
    check_replace(&s, &old, &new, None)?;
    Ok(Value::from(s.replace(&old, &new)))
}

/// `join(sep)`, sized first.
fn join(value: Value, sep: Option<String>) -> Result<Value, Error> {
    let sep = sep.unwrap_or_default();
    if let Some(s) = value.as_str() {
        // A string joins its characters.
        check_replace(s, "", &sep, None)?;
    } else {
        check_join(&value, &sep)?;
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        match item.as_str() {
            Some(s) => out.push_str(s),
            None => {
                let _ = write!(out, "{item}");
            }
        }
    }
    Ok(Value::from(out))
}

/// `split(sep, maxsplits)`, counted first.
fn split(value: Value, sep: Option<Arc<str>>, maxsplits: Option<i64>) -> Result<Value, Error> {
    let n = pieces(&text(&value), sep.as_deref());
    let n = match maxsplits.and_then(|m| usize::try_from(m).ok()) {
        Some(m) => n.min(m + 1),
        None => n,
    };
    check_pieces(n)?;
    minijinja::filters::split(&value, sep, maxsplits)
}

/// `lines`, counted first.
fn lines(value: Value) -> Result<Value, Error> {
    check_pieces(text(&value).lines().count() + 1)?;
    minijinja::filters::lines(&value)
}

/// `format(*args)` (printf-style), widths checked first.
fn format(state: &State, value: Value, args: Rest<Value>) -> Result<Value, Error> {
    check_widths(&text(&value))?;
    minijinja::filters::format(state, &value, args)
}

/// `indent(width, first, blank)`, the width and the result's size checked first.
fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let w = match width {
        Some(w) => w,
        None => kwargs.get::<Option<usize>>("width")?.unwrap_or(4),
    };
    if w as u64 > MAX_WIDTH {
        return Err(too_large("the indentation", w as u128, MAX_WIDTH as usize));
    }
    let s = value.as_str();
    let len = s.len() as u128 + (s.lines().count() as u128 + 1) * w as u128;
    let limit = current_limits().value_bytes;
    if len > limit as u128 {
        return Err(too_large("the indented string", len, limit));
    }
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// `sum`, of numbers only (a sum of lists or strings copies quadratically).
fn sum(state: &State, values: Value) -> Result<Value, Error> {
    for v in values.try_iter()? {
        if v.kind() != ValueKind::Number {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("sum adds numbers only in chat templates, not {}", v.kind()),
            ));
        }
    }
    minijinja::filters::sum(state, values)
}

/// `list`, counted first (a string becomes a list of its characters).
fn list(state: &State, value: Value) -> Result<Value, Error> {
    let n = match value.as_str() {
        Some(s) => s.chars().count(),
        None => value.len().unwrap_or(0),
    };
    check_pieces(n)?;
    minijinja::filters::list(state, value)
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`: `", "` and `": "`
/// separators on one line, newlines and indentation with `indent`.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    if indent.is_some_and(|n| n > MAX_INDENT) {
        return Err(too_large(
            "the JSON indentation",
            indent.unwrap_or(0) as u128,
            MAX_INDENT,
        ));
    }
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    let limit = current_limits().value_bytes;
    write_json(&json, indent, 0, &mut out, limit)
        .map_err(|()| too_large("the JSON text", out.len() as u128, limit))?;
    Ok(Value::from_safe_string(out))
}

/// Writes `v` into `out`; `Err` once `out` passes `limit` bytes.
fn write_json(
    v: &Json,
    indent: Option<usize>,
    level: usize,
    out: &mut String,
    limit: usize,
) -> Result<(), ()> {
    if out.len() > limit {
        return Err(());
    }
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
                write_json(x, indent, level + 1, out, limit)?;
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
                write_json(x, indent, level + 1, out, limit)?;
            }
            newline(out, level);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    Ok(())
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
