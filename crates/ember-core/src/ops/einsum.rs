//! `einsum`, composed of `diagonal`, `sum`, `permute`, `reshape` and batched `matmul` (so its
//! gradient is theirs). Operands are contracted left to right, two at a time, each pair as one
//! batched matrix product.

use crate::{Error, Result, Tensor};

const OP: &str = "einsum";
/// Ellipsis dims are labels `ELL + k`, k counted from the right; letters are their code.
const ELL: u32 = 1000;

fn err(msg: impl Into<String>) -> Error {
    Error::data(OP, msg)
}

/// One term's labels: letters, with the position of `...` if present.
struct Term {
    before: Vec<u32>,
    after: Option<Vec<u32>>,
}

fn parse_term(term: &str) -> Result<Term> {
    let letters = |s: &str| -> Result<Vec<u32>> {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    Ok(c as u32)
                } else {
                    Err(err(format!("'{c}' in \"{term}\" is not a letter or '...'")))
                }
            })
            .collect()
    };
    match term.split_once("...") {
        None => Ok(Term {
            before: letters(term)?,
            after: None,
        }),
        Some((a, b)) => Ok(Term {
            before: letters(a)?,
            after: Some(letters(b)?),
        }),
    }
}

impl Term {
    /// The labels of each dim of an operand of `rank`.
    fn labels(&self, rank: usize, which: usize) -> Result<Vec<u32>> {
        let named = self.before.len() + self.after.as_ref().map_or(0, Vec::len);
        match &self.after {
            None if named == rank => Ok(self.before.clone()),
            Some(after) if named <= rank => {
                let ell = rank - named;
                let mut l = self.before.clone();
                l.extend((0..ell).rev().map(|k| ELL + k as u32));
                l.extend(after);
                Ok(l)
            }
            _ => Err(err(format!(
                "operand {which} has rank {rank} but its subscripts name {named} dims"
            ))),
        }
    }
}

impl Tensor {
    /// Einstein summation, as `torch.einsum`: `"ij,jk->ik"` is a matrix product, `"bij->bji"`
    /// a transpose, `"ii->i"` a diagonal, `"...ij,...jk->...ik"` a batched product.
    /// Without `->` the output has the ellipsis dims, then the letters used once, sorted.
    /// Operands must share a dtype.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let a = Tensor::arange(0.0, 6.0, 1.0, DType::F32, Device::Cpu)?.reshape(&[2, 3])?;
    /// let b = Tensor::ones(&[3, 2], DType::F32, Device::Cpu)?;
    /// let c = Tensor::einsum("ij,jk->ik", &[&a, &b])?;
    /// assert_eq!(c.to_vec::<f32>()?, vec![3.0, 3.0, 12.0, 12.0]);
    /// assert_eq!(Tensor::einsum("ij->", &[&a])?.to_scalar::<f32>()?, 15.0);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn einsum(equation: &str, operands: &[&Tensor]) -> Result<Tensor> {
        let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (eq.as_str(), None),
        };
        let terms: Vec<&str> = lhs.split(',').collect();
        if terms.len() != operands.len() || operands.is_empty() {
            return Err(err(format!(
                "\"{equation}\" has {} operand terms but {} tensors were given",
                terms.len(),
                operands.len()
            )));
        }
        let dtype = operands[0].dtype();
        if let Some(t) = operands.iter().find(|t| t.dtype() != dtype) {
            return Err(Error::dtype(
                OP,
                &[dtype, t.dtype()],
                format!("operands must share a dtype, got {dtype} and {}", t.dtype()),
            ));
        }
        let mut items = Vec::with_capacity(operands.len());
        for (i, (term, t)) in terms.iter().zip(operands).enumerate() {
            let labels = parse_term(term)?.labels(t.rank(), i)?;
            items.push(take_diagonals((*t).clone(), labels)?);
        }
        let ell = items
            .iter()
            .flat_map(|(_, l)| l.iter())
            .filter(|&&l| l >= ELL)
            .map(|&l| l - ELL + 1)
            .max()
            .unwrap_or(0);
        let out = output_labels(rhs, &items, ell)?;
        contract(items, &out)
    }
}

/// Replaces each repeated label of one operand by its diagonal (moved to the end).
fn take_diagonals(mut t: Tensor, mut labels: Vec<u32>) -> Result<(Tensor, Vec<u32>)> {
    while let Some((p, q)) = (0..labels.len())
        .flat_map(|p| (p + 1..labels.len()).map(move |q| (p, q)))
        .find(|&(p, q)| labels[p] == labels[q])
    {
        if t.dims()[p] != t.dims()[q] {
            return Err(err(format!(
                "a repeated subscript spans dims of sizes {} and {}",
                t.dims()[p],
                t.dims()[q]
            )));
        }
        t = t.diagonal(0, p as isize, q as isize)?;
        let l = labels[p];
        labels.remove(q);
        labels.remove(p);
        labels.push(l);
    }
    Ok((t, labels))
}

fn output_labels(rhs: Option<&str>, items: &[(Tensor, Vec<u32>)], ell: u32) -> Result<Vec<u32>> {
    let ell_labels = (0..ell).rev().map(|k| ELL + k);
    let all: Vec<u32> = items.iter().flat_map(|(_, l)| l.clone()).collect();
    let Some(rhs) = rhs else {
        let mut once: Vec<u32> = all
            .iter()
            .copied()
            .filter(|&l| l < ELL && all.iter().filter(|&&m| m == l).count() == 1)
            .collect();
        once.sort_unstable();
        return Ok(ell_labels.chain(once).collect());
    };
    let term = parse_term(rhs)?;
    if term.after.is_none() && ell > 0 {
        return Err(err(format!(
            "the operands have '...' dims but the output \"{rhs}\" does not"
        )));
    }
    let mut out = term.before.clone();
    if let Some(after) = &term.after {
        out.extend(ell_labels);
        out.extend(after);
    }
    for (i, &l) in out.iter().enumerate() {
        if out[..i].contains(&l) {
            return Err(err(format!("output \"{rhs}\" repeats a subscript")));
        }
        if l < ELL && !all.contains(&l) {
            let c = char::from_u32(l).unwrap_or('?');
            return Err(err(format!("output subscript '{c}' is in no operand")));
        }
    }
    Ok(out)
}

/// Sums the dims whose labels `keep` does not hold.
fn sum_unkept(t: Tensor, labels: Vec<u32>, keep: &[u32]) -> Result<(Tensor, Vec<u32>)> {
    let gone: Vec<isize> = (0..labels.len())
        .filter(|&i| !keep.contains(&labels[i]))
        .map(|i| i as isize)
        .collect();
    if gone.is_empty() {
        return Ok((t, labels));
    }
    let rest = labels.into_iter().filter(|l| keep.contains(l)).collect();
    Ok((t.sum(&gone, false)?, rest))
}

fn contract(items: Vec<(Tensor, Vec<u32>)>, out: &[u32]) -> Result<Tensor> {
    let keep_after = |i: usize, items: &[(Tensor, Vec<u32>)]| -> Vec<u32> {
        let mut k = out.to_vec();
        for (_, l) in &items[i + 1..] {
            k.extend(l);
        }
        k
    };
    let mut iter = items.clone().into_iter().enumerate();
    let (_, (t0, l0)) = iter.next().expect("at least one operand");
    let (mut acc, mut labels) = sum_unkept(t0, l0, &keep_after(0, &items))?;
    for (i, (t, l)) in iter {
        let mut keep = keep_after(i, &items);
        keep.extend(&labels);
        let (t, l) = sum_unkept(t, l, &keep)?;
        let keep = keep_after(i, &items);
        (acc, labels) = pair(&acc, &labels, &t, &l, &keep)?;
    }
    let (acc, labels) = sum_unkept(acc, labels, out)?;
    if out.is_empty() {
        return Ok(acc);
    }
    let perm: Vec<isize> = out
        .iter()
        .map(|l| labels.iter().position(|m| m == l).expect("kept label") as isize)
        .collect();
    acc.permute(&perm)
}

/// One batched product of two labelled operands; labels outside `keep` that both hold are
/// contracted.
fn pair(
    a: &Tensor,
    la: &[u32],
    b: &Tensor,
    lb: &[u32],
    keep: &[u32],
) -> Result<(Tensor, Vec<u32>)> {
    let shared: Vec<u32> = la.iter().copied().filter(|l| lb.contains(l)).collect();
    let batch: Vec<u32> = shared
        .iter()
        .copied()
        .filter(|l| keep.contains(l))
        .collect();
    let contr: Vec<u32> = shared
        .iter()
        .copied()
        .filter(|l| !keep.contains(l))
        .collect();
    let a_only: Vec<u32> = la.iter().copied().filter(|l| !lb.contains(l)).collect();
    let b_only: Vec<u32> = lb.iter().copied().filter(|l| !la.contains(l)).collect();
    let size = |l: u32| -> Result<usize> {
        let sa = la.iter().position(|&m| m == l).map(|i| a.dims()[i]);
        let sb = lb.iter().position(|&m| m == l).map(|i| b.dims()[i]);
        match (sa, sb) {
            (Some(x), Some(y)) if x != y && x != 1 && y != 1 => Err(err(format!(
                "a subscript spans dims of sizes {x} and {y}, which do not broadcast"
            ))),
            (x, y) => Ok(x.unwrap_or(1).max(y.unwrap_or(1))),
        }
    };
    let arrange = |t: &Tensor, l: &[u32], order: &[&[u32]]| -> Result<Tensor> {
        let seq: Vec<u32> = order.iter().flat_map(|o| o.iter().copied()).collect();
        let perm: Vec<isize> = seq
            .iter()
            .map(|x| l.iter().position(|m| m == x).expect("label") as isize)
            .collect();
        let sizes = seq.iter().map(|&x| size(x)).collect::<Result<Vec<_>>>()?;
        let t = t.permute(&perm)?.broadcast_to(&sizes)?;
        let group = |g: &[u32]| -> Result<usize> { g.iter().map(|&x| size(x)).product() };
        let flat: Vec<usize> = order.iter().map(|g| group(g)).collect::<Result<_>>()?;
        t.reshape_to(&flat)
    };
    let am = arrange(a, la, &[&batch, &a_only, &contr])?; // (Bn, M, K)
    let bm = arrange(b, lb, &[&batch, &contr, &b_only])?; // (Bn, K, N)
    let prod = am.matmul(&bm)?; // (Bn, M, N)
    let labels: Vec<u32> = batch
        .iter()
        .chain(&a_only)
        .chain(&b_only)
        .copied()
        .collect();
    let dims = labels
        .iter()
        .map(|&l| size(l))
        .collect::<Result<Vec<_>>>()?;
    Ok((prod.reshape_to(&dims)?, labels))
}
