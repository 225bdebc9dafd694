//! The autocast mode of this thread (as grad mode is autograd's): the dtype low-precision ops
//! run in, the scope depth, and the casts of parameters made once per outermost scope. The
//! casts themselves are made by `crate::autocast` (`lower`, `full`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::tensor::{Tensor, TensorId};
use crate::{DType, Error, Result};

/// A cached cast: the parameter, the dtype, and whether grad mode was on (a cast made under
/// `no_grad` records nothing, so it must not serve a pass that needs gradients).
pub(crate) type CastKey = (TensorId, DType, bool);

thread_local! {
    static DTYPE: Cell<Option<DType>> = const { Cell::new(None) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static CACHE: RefCell<HashMap<CastKey, Tensor>> = RefCell::new(HashMap::new());
}

/// Runs the ops of this thread in mixed precision while the guard lives (as
/// `torch.autocast(device, dtype)`); scopes nest, an inner one may change the dtype.
/// `dtype` must be `BF16` or `F16`.
pub fn autocast(dtype: DType) -> Result<AutocastGuard> {
    if !matches!(dtype, DType::BF16 | DType::F16) {
        return Err(Error::dtype(
            "autocast",
            &[dtype],
            format!("runs in bf16 or f16, not {dtype}"),
        ));
    }
    Ok(enter(Some(dtype)))
}

/// Turns autocast off while the guard lives (as `torch.autocast(enabled=False)` inside an
/// autocast region): ops run in their inputs' dtypes.
pub fn autocast_off() -> AutocastGuard {
    enter(None)
}

fn enter(dtype: Option<DType>) -> AutocastGuard {
    let previous = DTYPE.with(|d| d.replace(dtype));
    DEPTH.with(|d| d.set(d.get() + 1));
    AutocastGuard {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// Restores the enclosing autocast state when dropped. See [`autocast`].
#[derive(Debug)]
#[must_use = "autocast applies only while the guard is alive"]
pub struct AutocastGuard {
    previous: Option<DType>,
    /// The state is per thread: the guard must drop on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        DTYPE.with(|d| d.set(self.previous));
        let depth = DEPTH.with(|d| {
            d.set(d.get().saturating_sub(1));
            d.get()
        });
        if depth == 0 {
            CACHE.with(|c| c.borrow_mut().clear());
        }
    }
}

/// The dtype autocast runs low-precision ops in on this thread, `None` outside a scope.
pub fn autocast_dtype() -> Option<DType> {
    DTYPE.with(Cell::get)
}

/// The cast of a parameter made earlier in this outermost scope, if any.
pub(crate) fn cached_cast_of(key: &CastKey) -> Option<Tensor> {
    CACHE.with(|c| c.borrow().get(key).cloned())
}

/// Keeps a parameter's cast for the rest of the outermost scope.
pub(crate) fn store_cast(key: CastKey, cast: Tensor) {
    CACHE.with(|c| c.borrow_mut().insert(key, cast));
}
