//! Element types and PyTorch's type promotion.

use std::fmt;

use burn_backend::{DType as BurnDType, FloatDType};
use half::{bf16, f16};

/// The element type of a tensor, chosen at run time.
///
/// | dtype | CPU | wgpu |
/// |---|---|---|
/// | `F32` | yes | yes |
/// | `F64` | yes | refused (burn's wgpu `exp`/`softmax` are wrong in F64) |
/// | `F16` | yes | where the adapter reports arithmetic support |
/// | `BF16` | yes | where the adapter reports arithmetic support (lavapipe does not) |
/// | `I64` | yes | where the adapter reports arithmetic support |
/// | `Bool` | yes | yes |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (the default).
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer (indices, token ids).
    I64,
    /// Boolean (masks, comparison results).
    Bool,
}

impl DType {
    /// All dtypes, in declaration order.
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::Bool,
    ];

    /// True for the floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// True for `I64`.
    pub fn is_int(self) -> bool {
        self == DType::I64
    }

    /// True for `Bool`.
    pub fn is_bool(self) -> bool {
        self == DType::Bool
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Bool => 1,
        }
    }

    /// The short name used in messages and `Display`: `f32`, `i64`, `bool`, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    /// The result dtype of a binary op between two tensors, following PyTorch:
    /// bool < i64 < floats; among floats the wider wins, and `F16` with `BF16` gives `F32`.
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        match (a, b) {
            (Bool, x) | (x, Bool) => x,
            (I64, x) | (x, I64) => x,
            (F64, _) | (_, F64) => F64,
            (F32, _) | (_, F32) => F32,
            // F16 with BF16.
            _ => F32,
        }
    }

    /// burn's float dtype, for float dtypes.
    pub(crate) fn burn_float(self) -> Option<FloatDType> {
        match self {
            DType::F32 => Some(FloatDType::F32),
            DType::F64 => Some(FloatDType::F64),
            DType::F16 => Some(FloatDType::F16),
            DType::BF16 => Some(FloatDType::BF16),
            _ => None,
        }
    }

    /// burn's dtype for host data of this dtype.
    pub(crate) fn burn_host(self) -> BurnDType {
        match self {
            DType::F32 => BurnDType::F32,
            DType::F64 => BurnDType::F64,
            DType::F16 => BurnDType::F16,
            DType::BF16 => BurnDType::BF16,
            DType::I64 => BurnDType::I64,
            DType::Bool => BurnDType::Bool(burn_backend::BoolStore::Native),
        }
    }

    /// Ember's dtype for a burn dtype, if Ember has one. Bool stores of any width map to `Bool`.
    pub fn from_burn(dtype: BurnDType) -> Option<DType> {
        Some(match dtype {
            BurnDType::F32 | BurnDType::Flex32 => DType::F32,
            BurnDType::F64 => DType::F64,
            BurnDType::F16 => DType::F16,
            BurnDType::BF16 => DType::BF16,
            BurnDType::I64 => DType::I64,
            BurnDType::Bool(_) => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be an element of a tensor: `f32`, `f64`, `f16`, `bf16`, `i64`, `bool`.
pub trait Element: Copy + Send + Sync + fmt::Debug + 'static + sealed::Sealed {
    /// The Ember dtype of this type.
    const DTYPE: DType;
    /// Converts to f64 (for printing and comparisons).
    fn to_f64(self) -> f64;
    /// Converts from f64, rounding as `as` does.
    fn from_f64(v: f64) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($t:ty, $dt:ident, $to:expr, $from:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            fn to_f64(self) -> f64 {
                let f: fn($t) -> f64 = $to;
                f(self)
            }
            fn from_f64(v: f64) -> Self {
                let f: fn(f64) -> $t = $from;
                f(v)
            }
        }
    };
}

element!(f32, F32, |x| x as f64, |v| v as f32);
element!(f64, F64, |x| x, |v| v);
element!(f16, F16, |x| x.to_f64(), f16::from_f64);
element!(bf16, BF16, |x| x.to_f64(), bf16::from_f64);
element!(i64, I64, |x| x as f64, |v| v as i64);
element!(bool, Bool, |x| if x { 1.0 } else { 0.0 }, |v| v != 0.0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_pytorch() {
        use DType::*;
        assert_eq!(DType::promote(F16, BF16), F32);
        assert_eq!(DType::promote(F16, F32), F32);
        assert_eq!(DType::promote(F32, F64), F64);
        assert_eq!(DType::promote(I64, F16), F16);
        assert_eq!(DType::promote(Bool, I64), I64);
        assert_eq!(DType::promote(Bool, Bool), Bool);
        assert_eq!(DType::promote(BF16, I64), BF16);
    }
}
