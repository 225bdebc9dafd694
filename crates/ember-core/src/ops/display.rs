//! A PyTorch-like `Display`: `tensor([[1.0000, 2.0000], ...], dtype=f64)`.

use std::fmt;

use crate::{DType, Device};

use crate::tensor::Tensor;

/// Above this many elements only the first and last `EDGE` entries of each dim are shown.
const SUMMARIZE_OVER: usize = 1000;
const EDGE: usize = 3;

/// Formats the values as PyTorch's default printer does: integral floats as `1.`, others with
/// four decimals, scientific notation when magnitudes span too far.
fn format_values(t: &Tensor) -> Result<Vec<String>, crate::Error> {
    Ok(match t.dtype() {
        DType::Bool => t
            .to_vec::<bool>()?
            .into_iter()
            .map(|b| if b { "True" } else { "False" }.to_string())
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()?
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
        _ => {
            let v = t.to_vec::<f64>()?;
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let integral = finite.iter().all(|x| x.fract() == 0.0);
            let nonzero: Vec<f64> = finite
                .iter()
                .map(|x| x.abs())
                .filter(|&x| x > 0.0)
                .collect();
            let max = nonzero.iter().copied().fold(0.0f64, f64::max);
            let min = nonzero.iter().copied().fold(f64::INFINITY, f64::min);
            let sci = !nonzero.is_empty() && (max / min > 1000.0 || max > 1e8 || min < 1e-4);
            v.into_iter()
                .map(|x| {
                    if !x.is_finite() {
                        if x.is_nan() {
                            "nan".into()
                        } else if x > 0.0 {
                            "inf".into()
                        } else {
                            "-inf".into()
                        }
                    } else if integral && !(sci && max > 1e8) {
                        format!("{x:.0}.")
                    } else if sci {
                        sci_format(x)
                    } else {
                        format!("{x:.4}")
                    }
                })
                .collect()
        }
    })
}

/// `1.2408e-01`, as PyTorch (Rust's `{:e}` writes `1.2408e-1`).
fn sci_format(x: f64) -> String {
    let s = format!("{x:.4e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Indices shown along a dim of `size`: all, or the edges around a `None` ellipsis.
fn shown(size: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && size > 2 * EDGE {
        let mut v: Vec<Option<usize>> = (0..EDGE).map(Some).collect();
        v.push(None);
        v.extend((size - EDGE..size).map(Some));
        v
    } else {
        (0..size).map(Some).collect()
    }
}

fn write_rec(
    out: &mut String,
    vals: &[String],
    width: usize,
    shape: &[usize],
    offset: usize,
    indent: usize,
    summarize: bool,
) {
    let stride: usize = shape[1..].iter().product();
    out.push('[');
    let items = shown(shape[0], summarize);
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            if shape.len() == 1 {
                out.push_str(", ");
            } else {
                out.push(',');
                out.push_str(&"\n".repeat(shape.len() - 1));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match item {
            None => out.push_str("..."),
            Some(i) if shape.len() == 1 => {
                out.push_str(&format!("{:>width$}", vals[offset + i]));
            }
            Some(i) => write_rec(
                out,
                vals,
                width,
                &shape[1..],
                offset + i * stride,
                indent + 1,
                summarize,
            ),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = match format_values(self) {
            Ok(v) => v,
            Err(e) => return write!(f, "tensor(<unreadable: {e}>)"),
        };
        let width = vals.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut body = String::new();
        if self.rank() == 0 {
            body.push_str(&vals[0]);
        } else {
            let summarize = self.numel() > SUMMARIZE_OVER;
            write_rec(&mut body, &vals, width, self.dims(), 0, 7, summarize);
        }
        write!(f, "tensor({body}")?;
        if !matches!(self.dtype(), DType::F32 | DType::I64 | DType::Bool) {
            write!(f, ", dtype={}", self.dtype())?;
        }
        if self.device() != Device::Cpu {
            write!(f, ", device='{}'", self.device())?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Device, Tensor};

    #[test]
    fn matches_pytorch_layout() {
        let t = Tensor::from_vec(vec![1.0f32, 2.5, -3.0, 4.0], &[2, 2], Device::Cpu).unwrap();
        assert_eq!(
            t.to_string(),
            "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]])"
        );
        let i = Tensor::arange(0.0, 3.0, 1.0, DType::I64, Device::Cpu).unwrap();
        assert_eq!(i.to_string(), "tensor([0, 1, 2])");
        let s = Tensor::scalar(3.0f64, Device::Cpu).unwrap();
        assert_eq!(s.to_string(), "tensor(3., dtype=f64)");
        let b = i.gt_scalar(0.0).unwrap();
        assert_eq!(b.to_string(), "tensor([False,  True,  True])");
        let sci = Tensor::from_vec(vec![1e-5f64, 1.0], &[2], Device::Cpu).unwrap();
        assert_eq!(
            sci.to_string(),
            "tensor([1.0000e-05, 1.0000e+00], dtype=f64)"
        );
        let big = Tensor::zeros(&[2000], DType::F32, Device::Cpu).unwrap();
        assert_eq!(big.to_string(), "tensor([0., 0., 0., ..., 0., 0., 0.])");
    }
}
