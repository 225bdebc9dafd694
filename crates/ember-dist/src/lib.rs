//! Data-parallel training across processes: a [`ProcessGroup`] (one process, or MPI ranks with
//! the `mpi` feature) and the gradient synchronisation of DistributedDataParallel ([`ddp`]).
//!
//! Ranks start from rank 0's parameters ([`ddp::broadcast_parameters`]); each computes the
//! gradients of its share of the micro-batches, and [`ddp::all_reduce_gradients`] sums them
//! in buckets, in reverse parameter order. With the loss of each micro-batch scaled by
//! `1 / (micro-batches in all ranks)`, two ranks give the bits one process gets with
//! gradient accumulation 2 (a sum of two is commutative); more ranks need
//! [`ReduceOrder::RankOrder`] for identical bits on every rank.
//!
//! ```
//! use ember_dist::{ProcessGroup, SingleProcess};
//! let group = SingleProcess;
//! let mut grads = vec![1.0f32, 2.0];
//! group.all_reduce_sum(&mut grads)?; // a sum over one rank
//! assert_eq!((group.rank(), group.world_size(), grads), (0, 1, vec![1.0, 2.0]));
//! # Ok::<(), ember_core::Error>(())
//! ```

pub mod ddp;
mod group;
#[cfg(feature = "mpi")]
mod mpi_group;
#[cfg(feature = "nccl")]
mod nccl_group;
mod reducer;

pub use group::{PendingSum, ProcessGroup, ReduceOrder, SingleProcess, init, launched_by_mpi};
#[cfg(feature = "mpi")]
pub use mpi_group::MpiGroup;
#[cfg(feature = "nccl")]
pub use nccl_group::{NcclGroup, nccl_available};
pub use reducer::{Ddp, Reducer};
