//! Reductions over one or several dims, declared once in the table below.
//!
//! Each row is one reduction: its [`ReduceFn`] variant and doc, the `Tensor` method and
//! PyTorch name, and burn's keep-dim reduction of one dim (integer, float).

/// The rows of the reduction table, handed to `$derive!` (see the module docs of `tables`).
macro_rules! reduce_table {
    ($derive:ident) => {
        $derive! {
            /// Sum over `dims` (`&[]` for all), as `torch.sum(x, dims, keepdim)`; bools sum as I64.
            ///
            /// ```
            /// # use ember_core::{Tensor, Device};
            /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2], Device::Cpu)?;
            /// assert_eq!(t.sum(&[-1], false)?.to_vec::<f32>()?, vec![3.0, 7.0]);
            /// assert_eq!(t.sum(&[], false)?.to_scalar::<f32>()?, 10.0);
            /// # Ok::<(), ember_core::Error>(())
            /// ```
            Sum => sum("sum", B::int_sum_dim, B::float_sum_dim);
            /// Mean over `dims` (`&[]` for all); float dtypes only, as PyTorch.
            Mean => mean("mean", B::int_mean_dim, B::float_mean_dim);
            /// Maximum over `dims` (`&[]` for all); values only (see [`Tensor::argmax`](crate::Tensor::argmax)). The
            /// gradient is shared among ties.
            Max => max("max", B::int_max_dim, B::float_max_dim);
            /// Minimum over `dims` (`&[]` for all). The gradient is shared among ties.
            Min => min("min", B::int_min_dim, B::float_min_dim);
        }
    };
}
pub(crate) use reduce_table;

macro_rules! reduce_enum {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $int:expr, $float:expr);
    )+) => {
        /// A reduction with a backward rule, as listed in `base/tables/reduce.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReduceFn {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ReduceFn {
            /// Every reduction, in table order.
            pub const ALL: &'static [ReduceFn] = &[$(ReduceFn::$variant),+];

            /// PyTorch's name: `"sum"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(ReduceFn::$variant => $name,)+
                }
            }
        }
    };
}

reduce_table!(reduce_enum);

impl ReduceFn {
    /// The reduction with PyTorch's name `name`.
    pub fn from_name(name: &str) -> Option<ReduceFn> {
        ReduceFn::ALL.iter().copied().find(|f| f.name() == name)
    }
}
