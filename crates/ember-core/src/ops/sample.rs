//! Integer sampling: `randint`, `randperm`, `multinomial`. Drawn on the host from a
//! [`Generator`] (the global one for the plain functions), so results are identical on every
//! device; the streams are Ember's own, not PyTorch's.

use crate::base::memory;
use crate::base::random::{Generator, with_global};
use crate::{DType, Device, Error, Result, Tensor};

impl Generator {
    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

impl Tensor {
    /// Uniform I64 integers in `low..high`, as `torch.randint`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let t = Tensor::randint(-2, 3, &[100], Device::Cpu)?;
    /// assert!(t.to_vec::<i64>()?.iter().all(|v| (-2..3).contains(v)));
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn randint(low: i64, high: i64, shape: &[usize], device: Device) -> Result<Tensor> {
        with_global(|g| Tensor::randint_with(g, low, high, shape, device))
    }

    /// [`Tensor::randint`] with a given generator.
    pub fn randint_with(
        g: &mut Generator,
        low: i64,
        high: i64,
        shape: &[usize],
        device: Device,
    ) -> Result<Tensor> {
        if high <= low {
            return Err(Error::data(
                "randint",
                format!("the range {low}..{high} is empty"),
            ));
        }
        memory::check_tensor("randint", shape, DType::I64, device)?;
        let n: usize = shape.iter().product();
        let span = high.abs_diff(low);
        let values = (0..n)
            .map(|_| low.wrapping_add(g.below(span) as i64))
            .collect();
        Tensor::from_vec(values, shape, device)
    }

    /// A random permutation of `0..n` (I64), as `torch.randperm`.
    pub fn randperm(n: usize, device: Device) -> Result<Tensor> {
        with_global(|g| Tensor::randperm_with(g, n, device))
    }

    /// [`Tensor::randperm`] with a given generator (Fisher–Yates).
    pub fn randperm_with(g: &mut Generator, n: usize, device: Device) -> Result<Tensor> {
        memory::check_tensor("randperm", &[n], DType::I64, device)?;
        let mut values: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = g.below(i as u64 + 1) as usize;
            values.swap(i, j);
        }
        Tensor::from_vec(values, &[n], device)
    }

    /// Draws `num_samples` category indices (I64) from each row of non-negative weights
    /// `self (C,)` or `(B, C)`, as `torch.multinomial`; without `replacement` a category is
    /// drawn at most once per row.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let p = Tensor::from_vec(vec![0.0f32, 1.0, 0.0], &[3], Device::Cpu)?;
    /// assert_eq!(p.multinomial(2, true)?.to_vec::<i64>()?, vec![1, 1]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn multinomial(&self, num_samples: usize, replacement: bool) -> Result<Tensor> {
        with_global(|g| self.multinomial_with(g, num_samples, replacement))
    }

    /// [`Tensor::multinomial`] with a given generator.
    pub fn multinomial_with(
        &self,
        g: &mut Generator,
        num_samples: usize,
        replacement: bool,
    ) -> Result<Tensor> {
        const OP: &str = "multinomial";
        if !(1..=2).contains(&self.rank()) || !self.dtype().is_float() || num_samples == 0 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "expects float weights of shape (C,) or (B, C) and at least one sample, \
                     got {:?} ({}) and {num_samples}",
                    self.dims(),
                    self.dtype()
                ),
            ));
        }
        let c = *self.dims().last().expect("rank >= 1");
        let rows = self.numel() / c;
        let weights = self.to_vec::<f64>()?;
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::data(OP, "weights must be finite and non-negative"));
        }
        let mut out = Vec::with_capacity(rows * num_samples);
        for row in weights.chunks(c) {
            let mut w = row.to_vec();
            let available = w.iter().filter(|&&v| v > 0.0).count();
            if available == 0 || (!replacement && num_samples > available) {
                return Err(Error::data(
                    OP,
                    format!(
                        "a row has {available} categories with non-zero weight; cannot draw \
                         {num_samples} samples{}",
                        if replacement {
                            ""
                        } else {
                            " without replacement"
                        }
                    ),
                ));
            }
            for _ in 0..num_samples {
                let total: f64 = w.iter().sum();
                let mut u = g.uniform() * total;
                let mut pick = w.iter().rposition(|&v| v > 0.0).expect("a positive weight");
                for (k, &v) in w.iter().enumerate() {
                    if v > 0.0 && u < v {
                        pick = k;
                        break;
                    }
                    u -= v;
                }
                out.push(pick as i64);
                if !replacement {
                    w[pick] = 0.0;
                }
            }
        }
        let mut shape = self.shape();
        *shape.last_mut().expect("rank >= 1") = num_samples;
        Tensor::from_vec(out, &shape, self.device())
    }
}
