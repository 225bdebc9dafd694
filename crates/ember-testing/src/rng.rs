//! Random inputs that each test draws from its own generator.
//!
//! Ember's default generator is global, as PyTorch's is, and the test harness runs tests on
//! parallel threads: a test that calls `manual_seed` and then `Tensor::randn` gets values
//! that depend on what the other tests drew in between, so a failure cannot be replayed.
//! [`seed`] gives the calling thread (one test) its own stream instead.
//!
//! ```
//! use ember_core::DType;
//! ember_testing::rng::seed(3);
//! let a = ember_testing::rng::randn(&[4], DType::F32).unwrap();
//! ember_testing::rng::seed(3);
//! let b = ember_testing::rng::randn(&[4], DType::F32).unwrap();
//! assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
//! ```

use std::cell::RefCell;

use ember_core::{DType, Device, Generator, Result, Tensor};

thread_local! {
    static THIS_TEST: RefCell<Generator> = const { RefCell::new(Generator::new(0)) };
}

/// Restarts the calling thread's generator at `seed`.
pub fn seed(seed: u64) {
    THIS_TEST.with(|g| *g.borrow_mut() = Generator::new(seed));
}

/// Standard normals of `dims` in `dtype` on the CPU, from the calling thread's generator.
pub fn randn(dims: &[usize], dtype: DType) -> Result<Tensor> {
    THIS_TEST.with(|g| Tensor::randn_with(&mut g.borrow_mut(), dims, dtype, Device::Cpu))
}
