//! Helpers for command-line programs built on Ember (the examples use them): value parsers
//! that refuse NaN, infinities and out-of-range numbers when the flags are parsed (they fit
//! clap's `value_parser`, being plain `fn(&str) -> Result<T, String>`), and [`exit_on_error`],
//! which prints an error as one line for a person and exits with status 1.
//!
//! ```
//! use ember::cli::{positive_f64, probability};
//! assert_eq!(positive_f64("3e-4"), Ok(3e-4));
//! assert!(positive_f64("NaN").is_err());
//! assert!(positive_f64("-1").is_err());
//! assert!(probability("1.5").is_err());
//! ```

use std::fmt::Display;

fn number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{s} is not finite"));
    }
    Ok(v)
}

/// A finite number > 0 (a learning rate, an epsilon).
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be positive"))
    }
}

/// A finite number ≥ 0 (a temperature, where 0 means greedy; a weight decay).
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be at least 0"))
    }
}

/// A probability in [0, 1) (a dropout rate).
pub fn probability_below_one(s: &str) -> Result<f64, String> {
    let v = non_negative_f64(s)?;
    if v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not in [0, 1)"))
    }
}

/// A probability in (0, 1] (`top_p`).
pub fn probability(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} must be in (0, 1]"))
    }
}

/// Runs a program's body; on an error prints `error: <message>` (the error's one-line
/// `Display`, naming the op, shapes and paths) to stderr and exits with status 1.
pub fn exit_on_error<E: Display>(result: Result<(), E>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
