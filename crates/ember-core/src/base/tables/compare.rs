//! Elementwise comparisons (tensor–tensor with broadcasting, and tensor–scalar), declared once
//! in the table below. They produce Bool tensors and have no gradient.
//!
//! Each row is one comparison: its [`CompareFn`] variant and doc; the tensor–tensor method
//! and name with its burn primitives (bool, if bools compare natively; integer; float); the
//! tensor–scalar method and name with its primitives.

/// The rows of the comparison table, handed to `$derive!` (see the module docs of `tables`).
macro_rules! compare_table {
    ($derive:ident) => {
        $derive! {
            /// `a == b`.
            Eq => eq("eq", Some(B::bool_equal), B::int_equal, B::float_equal),
                eq_scalar("eq_scalar", B::int_equal_elem, B::float_equal_elem);
            /// `a != b`.
            Ne => ne("ne", Some(B::bool_not_equal), B::int_not_equal, B::float_not_equal),
                ne_scalar("ne_scalar", B::int_not_equal_elem, B::float_not_equal_elem);
            /// `a < b`.
            Lt => lt("lt", None, B::int_lower, B::float_lower),
                lt_scalar("lt_scalar", B::int_lower_elem, B::float_lower_elem);
            /// `a <= b`.
            Le => le("le", None, B::int_lower_equal, B::float_lower_equal),
                le_scalar("le_scalar", B::int_lower_equal_elem, B::float_lower_equal_elem);
            /// `a > b`.
            Gt => gt("gt", None, B::int_greater, B::float_greater),
                gt_scalar("gt_scalar", B::int_greater_elem, B::float_greater_elem);
            /// `a >= b`.
            Ge => ge("ge", None, B::int_greater_equal, B::float_greater_equal),
                ge_scalar("ge_scalar", B::int_greater_equal_elem, B::float_greater_equal_elem);
        }
    };
}
pub(crate) use compare_table;

macro_rules! compare_enum {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $method:ident($name:literal, $bool:expr, $int:expr, $float:expr),
            $smethod:ident($sname:literal, $sint:expr, $sfloat:expr);
    )+) => {
        /// An elementwise comparison, as listed in `base/tables/compare.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CompareFn {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl CompareFn {
            /// Every comparison, in table order.
            pub const ALL: &'static [CompareFn] = &[$(CompareFn::$variant),+];

            /// PyTorch's name of the tensor–tensor comparison: `"eq"`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(CompareFn::$variant => $name,)+
                }
            }

            /// The name of the tensor–scalar comparison: `"eq_scalar"`, ...
            pub fn scalar_name(self) -> &'static str {
                match self {
                    $(CompareFn::$variant => $sname,)+
                }
            }
        }
    };
}

compare_table!(compare_enum);

impl CompareFn {
    /// The comparison with this tensor–tensor name (`"lt"`).
    pub fn from_name(name: &str) -> Option<CompareFn> {
        CompareFn::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The comparison with this tensor–scalar name (`"lt_scalar"`).
    pub fn from_scalar_name(name: &str) -> Option<CompareFn> {
        CompareFn::ALL
            .iter()
            .copied()
            .find(|f| f.scalar_name() == name)
    }
}
