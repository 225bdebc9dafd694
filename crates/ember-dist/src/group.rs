//! What a data-parallel run needs from the processes it spans: their number and this one's
//! rank, sums of buffers over all of them, a broadcast from one, and a barrier.

use std::fmt::Debug;
use std::sync::Arc;

use ember_core::{Error, Result};
use half::bf16;

/// How a sum over ranks is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReduceOrder {
    /// The MPI library's own algorithm (fastest). With two ranks every rank gets the same
    /// bits (`a + b == b + a`); with more, the grouping may differ between ranks and runs.
    #[default]
    Fast,
    /// Gathered on rank 0, summed in rank order (`((r0 + r1) + r2) + ...`), broadcast: the
    /// same bits on every rank and in every run, for any number of ranks.
    RankOrder,
}

/// A group of processes that train one model together.
///
/// Every collective must be called by every rank in the same order with buffers of the same
/// length; a rank that dies or never arrives makes the others' call return an error after the
/// group's timeout instead of hanging.
pub trait ProcessGroup: Debug + Send + Sync {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;

    /// Processes in the group.
    fn world_size(&self) -> usize;

    /// Replaces `buf` on every rank by its element-wise sum over the ranks.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;

    /// [`ProcessGroup::all_reduce_sum`] for f64 (losses and norms).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;

    /// Replaces `buf` on every rank by rank `root`'s.
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Starts [`ProcessGroup::all_reduce_sum`] on `buf` and returns at once where the backend
    /// can (MPI in [`ReduceOrder::Fast`]), so computation overlaps the communication; the sum
    /// is collected with [`PendingSum::wait`]. Ranks must start their sums in the same order.
    /// By default the sum runs here, blocking.
    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Box<dyn PendingSum + '_>> {
        let mut buf = buf;
        self.all_reduce_sum(&mut buf)?;
        Ok(Box::new(Summed(buf)))
    }

    /// A bf16 sum: widened to f32, summed, rounded back once.
    fn all_reduce_sum_bf16(&self, buf: &mut [bf16]) -> Result<()> {
        let mut wide: Vec<f32> = buf.iter().map(|v| v.to_f32()).collect();
        self.all_reduce_sum(&mut wide)?;
        for (b, w) in buf.iter_mut().zip(wide) {
            *b = bf16::from_f32(w);
        }
        Ok(())
    }

    /// True on rank 0, the rank that writes logs, plots and checkpoints.
    fn is_main(&self) -> bool {
        self.rank() == 0
    }
}

/// A sum started by [`ProcessGroup::start_all_reduce_sum`].
pub trait PendingSum {
    /// Lets the backend progress the sum without waiting (MPI moves non-blocking
    /// collectives forward only inside its calls); returns whether it is done.
    fn poll(&mut self) -> Result<bool> {
        Ok(true)
    }

    /// Waits for the sum and returns it.
    fn wait(self: Box<Self>) -> Result<Vec<f32>>;
}

/// A sum already computed.
pub(crate) struct Summed(pub(crate) Vec<f32>);

impl PendingSum for Summed {
    fn wait(self: Box<Self>) -> Result<Vec<f32>> {
        Ok(self.0)
    }
}

/// The group of this process alone: every collective returns at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl ProcessGroup for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn broadcast(&self, _buf: &mut [u8], root: usize) -> Result<()> {
        match root {
            0 => Ok(()),
            _ => Err(Error::data(
                "ProcessGroup::broadcast",
                format!("root {root} in a group of one process"),
            )),
        }
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// True when this process was started by an MPI launcher (`mpirun`, `srun` with PMI).
pub fn launched_by_mpi() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// The group this process belongs to: MPI's world when an MPI launcher started it (with the
/// `mpi` feature), otherwise this process alone. Under a launcher without the feature it is an
/// error rather than N copies training alone. `EMBER_DIST_BACKEND=nccl` sums over NCCL on
/// one GPU per rank instead (the `nccl` feature, `NcclGroup`).
pub fn init(order: ReduceOrder) -> Result<Arc<dyn ProcessGroup>> {
    if !launched_by_mpi() {
        return Ok(Arc::new(SingleProcess));
    }
    let backend = std::env::var("EMBER_DIST_BACKEND").unwrap_or_default();
    match backend.as_str() {
        "" | "mpi" => {}
        "nccl" => return nccl(order),
        other => {
            return Err(Error::data(
                "ember_dist::init",
                format!("EMBER_DIST_BACKEND={other:?}: expected mpi or nccl"),
            ));
        }
    }
    #[cfg(feature = "mpi")]
    {
        Ok(Arc::new(crate::MpiGroup::world(order)?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = order;
        Err(Error::data(
            "ember_dist::init",
            "started by an MPI launcher, but built without the `mpi` feature: rebuild with \
             `--features embergrad/mpi` (Debian: libopenmpi-dev openmpi-bin libclang-dev)",
        ))
    }
}

/// The NCCL group, where built (its sums have NCCL's order, not [`ReduceOrder::RankOrder`]).
fn nccl(order: ReduceOrder) -> Result<Arc<dyn ProcessGroup>> {
    if order == ReduceOrder::RankOrder {
        return Err(Error::data(
            "ember_dist::init",
            "EMBER_DIST_BACKEND=nccl sums in NCCL's order: the rank-order mode needs MPI",
        ));
    }
    #[cfg(feature = "nccl")]
    {
        Ok(Arc::new(crate::NcclGroup::world()?))
    }
    #[cfg(not(feature = "nccl"))]
    {
        Err(Error::data(
            "ember_dist::init",
            "EMBER_DIST_BACKEND=nccl, but built without the `nccl` feature: rebuild with \
             `--features embergrad/nccl`",
        ))
    }
}
