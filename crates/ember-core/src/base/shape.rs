//! Shape arithmetic: dims, broadcasting, reshape inference. Pure functions, no tensors.

use crate::{Error, Result};

/// The number of elements of `shape`, or an error when the product overflows.
pub(crate) fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::shape(
                op,
                &[shape],
                format!("shape {shape:?} has more elements than an address space holds"),
            )
        })
}

/// Resolves a possibly negative dim against `rank`.
pub(crate) fn norm_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(Error::DimOutOfRange { op, dim, rank });
    }
    Ok(d as usize)
}

/// Resolves a list of dims; an empty list means every dim. Duplicates are an error.
pub(crate) fn norm_dims(op: &'static str, dims: &[isize], rank: usize) -> Result<Vec<usize>> {
    if dims.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = norm_dim(op, d, rank)?;
        if out.contains(&d) {
            return Err(Error::data(
                op,
                format!("dim {d} appears more than once in {dims:?}"),
            ));
        }
        out.push(d);
    }
    out.sort_unstable();
    Ok(out)
}

/// NumPy broadcasting of two shapes.
pub(crate) fn broadcast(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Broadcast {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                });
            }
        };
    }
    Ok(out)
}

/// Whether `from` broadcasts to exactly `to`.
pub(crate) fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// Resolves a reshape target with at most one `-1`.
pub(crate) fn infer_shape(op: &'static str, spec: &[isize], from: &[usize]) -> Result<Vec<usize>> {
    let numel: usize = from.iter().product();
    let mut infer = None;
    let mut known = 1usize;
    let mut out = Vec::with_capacity(spec.len());
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            -1 => {
                return Err(Error::shape(
                    op,
                    &[from],
                    format!("only one -1 is allowed in {spec:?}"),
                ));
            }
            s if s < 0 => {
                return Err(Error::shape(
                    op,
                    &[from],
                    format!("invalid size {s} in {spec:?}"),
                ));
            }
            s => {
                known = known
                    .checked_mul(s as usize)
                    .ok_or_else(|| Error::shape(op, &[from], format!("sizes {spec:?} overflow")))?;
                out.push(s as usize);
            }
        }
    }
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(Error::shape(
                op,
                &[from],
                format!(
                    "shape {spec:?} is invalid for a tensor of shape {from:?} ({numel} elements)"
                ),
            ));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(Error::shape(
            op,
            &[from],
            format!("shape {spec:?} is invalid for a tensor of shape {from:?} ({numel} elements)"),
        ));
    }
    Ok(out)
}

/// Rejects shapes with a zero-sized dim (not supported by every backend yet).
pub(crate) fn check_nonempty(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::shape(
            op,
            &[shape],
            format!("shape {shape:?} has a zero-sized dimension; empty tensors are not supported"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast("t", &[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast("t", &[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
        assert_eq!(broadcast("t", &[], &[2]).unwrap(), vec![2]);
        let e = broadcast("add", &[2, 3], &[4]).unwrap_err().to_string();
        assert_eq!(e, "add: shapes [2, 3] and [4] cannot be broadcast together");
    }

    #[test]
    fn reshape_inference() {
        assert_eq!(infer_shape("r", &[-1, 3], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(infer_shape("r", &[-1, -1], &[2, 3]).is_err());
        assert!(infer_shape("r", &[4, 2], &[2, 3]).is_err());
        assert!(infer_shape("r", &[-1, 4], &[2, 3]).is_err());
    }

    #[test]
    fn dims() {
        assert_eq!(norm_dim("d", -1, 3).unwrap(), 2);
        assert!(norm_dim("d", 3, 3).is_err());
        assert!(norm_dim("d", -4, 3).is_err());
        assert_eq!(norm_dims("d", &[], 2).unwrap(), vec![0, 1]);
        assert!(norm_dims("d", &[0, -2], 2).is_err());
    }
}
