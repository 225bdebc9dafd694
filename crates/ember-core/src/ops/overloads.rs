//! Operator overloads for quick scripts. They panic with the message the fallible method
//! would return; library code calls the methods (`add`, `mul`, ...) and handles the `Result`.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::tensor::Tensor;

fn ok(r: crate::Result<Tensor>) -> Tensor {
    r.unwrap_or_else(|e| panic!("{e}"))
}

macro_rules! binop {
    ($trait:ident, $fn:ident, $method:ident, $scalar:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            /// Panics where the fallible method returns an error.
            fn $fn(self, rhs: &Tensor) -> Tensor {
                ok(Tensor::$method(&self, rhs))
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            /// Panics where the fallible method returns an error.
            fn $fn(self, rhs: Tensor) -> Tensor {
                ok(Tensor::$method(&self, &rhs))
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            /// Panics where the fallible method returns an error.
            fn $fn(self, rhs: &Tensor) -> Tensor {
                ok(Tensor::$method(&self, rhs))
            }
        }
        impl $trait<f64> for &Tensor {
            type Output = Tensor;
            /// Panics where the fallible method returns an error.
            fn $fn(self, rhs: f64) -> Tensor {
                ok(Tensor::$scalar(&self, rhs))
            }
        }
        impl $trait<f64> for Tensor {
            type Output = Tensor;
            /// Panics where the fallible method returns an error.
            fn $fn(self, rhs: f64) -> Tensor {
                ok(Tensor::$scalar(&self, rhs))
            }
        }
    };
}

binop!(Add, add, add, add_scalar);
binop!(Sub, sub, sub, sub_scalar);
binop!(Mul, mul, mul, mul_scalar);
binop!(Div, div, div, div_scalar);

impl Neg for &Tensor {
    type Output = Tensor;
    /// Panics for bool tensors.
    fn neg(self) -> Tensor {
        ok(Tensor::neg(self))
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    /// Panics for bool tensors.
    fn neg(self) -> Tensor {
        ok(Tensor::neg(&self))
    }
}
