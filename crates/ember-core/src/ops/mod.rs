//! The top layer: every op's forward as a `Tensor` method, grouped by family. Validation,
//! dtype promotion, broadcasting, autocast, the call into the kernel layer, and the record
//! for autograd. Each op is defined once; the elementwise families and reductions come from
//! the op tables (`base/tables/`), one method per row (`unary`, `binary`, `compare`,
//! `reduce`). The fused families line up by name with their kernel entries
//! (`ops/norm.rs` ↔ `kernels/norm.rs` ↔ `kernels/cpu/norm.rs`, and so for `softmax`,
//! `loss`, `attention`, `rotary`, `activation`, `matmul`, `qlinear`, `optim`).

mod activation;
mod arrange;
mod attention;
pub(crate) mod binary;
mod compare;
mod conv;
mod create;
mod display;
mod einsum;
mod elementwise;
mod index;
mod indexing;
mod inplace;
mod layout;
mod logical;
mod loss;
mod matmul;
mod norm;
pub(crate) mod optim;
mod overloads;
mod pool;
mod qlinear;
pub(crate) mod reduce;
mod rotary;
mod sample;
mod scan;
mod select;
mod shared;
mod softmax;
mod sort;
mod unary;

pub use arrange::PadMode;
pub use conv::ConvOpts;
pub use elementwise::Operand;
pub use indexing::{ELLIPSIS, Indexer, Ix, NEW_AXIS};
pub use pool::PoolOpts;

use crate::autograd::{Op, no_grad};
use crate::{Result, Tensor};

impl Tensor {
    /// Runs `forward` (a kernel entry) with recording off and records `op` on its result:
    /// how every fused op becomes one node of the graph.
    pub(crate) fn fused(
        &self,
        inputs: &[&Tensor],
        forward: impl FnOnce() -> Result<Tensor>,
        op: impl FnOnce() -> Op,
    ) -> Result<Tensor> {
        let y = {
            let _guard = no_grad();
            forward()?
        };
        let y = y.detach();
        Ok(y.record(inputs, op))
    }
}
