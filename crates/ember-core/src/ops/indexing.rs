//! Basic indexing, as PyTorch's `t[..., 2, 1:, None]`: [`Tensor::i`] takes an integer, a
//! range, [`NEW_AXIS`], [`ELLIPSIS`], or a tuple of them. Composed of `narrow`, `squeeze`,
//! `slice` and `unsqueeze`, so gradients flow through it.

use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use crate::base::shape::norm_dim;
use crate::{Error, Result, Tensor};

/// One index of [`Tensor::i`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ix {
    /// Picks one position and drops the dim (negative counts from the end).
    At(isize),
    /// `start..end` with a step (ends may be negative or left open), keeping the dim.
    Slice {
        /// first position (`None`: 0)
        start: Option<isize>,
        /// one past the last (`None`: the end)
        end: Option<isize>,
        /// at least 1
        step: usize,
    },
    /// Inserts a dim of size 1 (`None` in PyTorch).
    NewAxis,
    /// Every remaining dim (`...`).
    Ellipsis,
}

/// `None` in a PyTorch index: a new dim of size 1.
pub const NEW_AXIS: Ix = Ix::NewAxis;
/// `...` in a PyTorch index.
pub const ELLIPSIS: Ix = Ix::Ellipsis;

impl Ix {
    /// `start..end` every `step` elements (`t[start:end:step]`).
    pub fn step(start: Option<isize>, end: Option<isize>, step: usize) -> Ix {
        Ix::Slice { start, end, step }
    }
}

macro_rules! int_indices {
    ($($t:ty),*) => {$(
        impl From<$t> for Ix {
            fn from(v: $t) -> Ix {
                Ix::At(v as isize)
            }
        }
        impl From<Range<$t>> for Ix {
            fn from(r: Range<$t>) -> Ix {
                Ix::step(Some(r.start as isize), Some(r.end as isize), 1)
            }
        }
        impl From<RangeFrom<$t>> for Ix {
            fn from(r: RangeFrom<$t>) -> Ix {
                Ix::step(Some(r.start as isize), None, 1)
            }
        }
        impl From<RangeTo<$t>> for Ix {
            fn from(r: RangeTo<$t>) -> Ix {
                Ix::step(None, Some(r.end as isize), 1)
            }
        }
        impl From<RangeInclusive<$t>> for Ix {
            fn from(r: RangeInclusive<$t>) -> Ix {
                let end = *r.end() as isize;
                Ix::step(Some(*r.start() as isize), (end != -1).then_some(end + 1), 1)
            }
        }
        impl From<RangeToInclusive<$t>> for Ix {
            fn from(r: RangeToInclusive<$t>) -> Ix {
                let end = r.end as isize;
                Ix::step(None, (end != -1).then_some(end + 1), 1)
            }
        }
    )*};
}

int_indices!(i32, i64, isize, usize);

impl From<RangeFull> for Ix {
    fn from(_: RangeFull) -> Ix {
        Ix::step(None, None, 1)
    }
}

/// Something [`Tensor::i`] accepts: one index, a tuple of up to eight, or a list of [`Ix`].
pub trait Indexer {
    /// The indices, in order.
    fn indices(self) -> Vec<Ix>;
}

impl<T: Into<Ix>> Indexer for T {
    fn indices(self) -> Vec<Ix> {
        vec![self.into()]
    }
}

impl Indexer for Vec<Ix> {
    fn indices(self) -> Vec<Ix> {
        self
    }
}

impl Indexer for &[Ix] {
    fn indices(self) -> Vec<Ix> {
        self.to_vec()
    }
}

macro_rules! tuple_indexer {
    ($($name:ident),+) => {
        impl<$($name: Into<Ix>),+> Indexer for ($($name,)+) {
            #[allow(non_snake_case)]
            fn indices(self) -> Vec<Ix> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
            }
        }
    };
}

tuple_indexer!(A);
tuple_indexer!(A, B);
tuple_indexer!(A, B, C);
tuple_indexer!(A, B, C, D);
tuple_indexer!(A, B, C, D, E);
tuple_indexer!(A, B, C, D, E, F);
tuple_indexer!(A, B, C, D, E, F, G);
tuple_indexer!(A, B, C, D, E, F, G, H);

impl Tensor {
    /// Indexes as PyTorch's `t[...]`: integers drop their dim, ranges slice, [`NEW_AXIS`]
    /// inserts a dim, [`ELLIPSIS`] (or fewer indices than dims) keeps the rest.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType, Ix, ELLIPSIS, NEW_AXIS};
    /// let t = Tensor::arange(0.0, 24.0, 1.0, DType::I64, Device::Cpu)?.reshape(&[2, 3, 4])?;
    /// assert_eq!(t.i((.., 2, 1..))?.to_vec::<i64>()?, vec![9, 10, 11, 21, 22, 23]); // t[:, 2, 1:]
    /// assert_eq!(t.i((ELLIPSIS, -1))?.dims(), &[2, 3]); // t[..., -1]
    /// assert_eq!(t.i((1, NEW_AXIS))?.dims(), &[1, 3, 4]); // t[1, None]
    /// assert_eq!(t.i((0, 0, Ix::step(None, None, 2)))?.to_vec::<i64>()?, vec![0, 2]); // t[0, 0, ::2]
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn i(&self, index: impl Indexer) -> Result<Tensor> {
        const OP: &str = "index";
        let ixs = index.indices();
        let consuming = ixs
            .iter()
            .filter(|x| matches!(x, Ix::At(_) | Ix::Slice { .. }))
            .count();
        let ellipses = ixs.iter().filter(|x| **x == Ix::Ellipsis).count();
        if consuming > self.rank() || ellipses > 1 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "{consuming} indices{} for a tensor of rank {}",
                    if ellipses > 1 {
                        " and several '...'"
                    } else {
                        ""
                    },
                    self.rank()
                ),
            ));
        }
        let mut y = self.clone();
        let mut d = 0usize;
        for ix in ixs {
            match ix {
                Ix::At(i) => {
                    let size = y.dims()[d];
                    let at = norm_dim(OP, i, size).map_err(|_| {
                        Error::index(
                            OP,
                            i as i64,
                            size,
                            format!("index {i} is out of range for a dim of size {size}"),
                        )
                    })?;
                    y = y.narrow(d as isize, at, 1)?.squeeze(d as isize)?;
                }
                Ix::Slice { start, end, step } => {
                    if (start, end, step) != (None, None, 1) {
                        y = y.slice(d as isize, start, end, step)?;
                    }
                    d += 1;
                }
                Ix::NewAxis => {
                    y = y.unsqueeze(d as isize)?;
                    d += 1;
                }
                Ix::Ellipsis => d += self.rank() - consuming,
            }
        }
        Ok(y)
    }
}
