//! NCCL for CUDA GPUs (cudarc; `libcuda` and `libnccl` are loaded at run time, so building
//! needs neither), bootstrapped through MPI: rank 0 makes NCCL's unique id and MPI broadcasts
//! it. One GPU per rank, picked by the launcher's local rank.
//!
//! Ember's tensors live on the CPU or on wgpu, not in CUDA memory, so each sum is staged: the
//! buffer is copied to the rank's GPU, summed there by `ncclAllReduce` (over NVLink or
//! InfiniBand between nodes), and copied back. The copies and the sum run on one stream,
//! started by [`ProcessGroup::start_all_reduce_sum`] and polled, so the backward pass goes on
//! meanwhile. Broadcasts and barriers go through MPI. [`ReduceOrder::RankOrder`] is MPI's: it
//! needs its own summation order, which NCCL does not offer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DeviceRepr};
use cudarc::nccl::{Comm, Id, NcclType, ReduceOp};
use ember_core::{Error, Result};

use crate::group::{PendingSum, ProcessGroup, ReduceOrder, Summed};
use crate::mpi_group::MpiGroup;

fn nccl_error(what: &str, msg: impl std::fmt::Debug) -> Error {
    Error::data("NcclGroup", format!("{what}: {msg:?}"))
}

/// The communicator, used by one call at a time.
struct Communicator(Comm);

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it do not
// overlap; every use goes through `NcclGroup::comm`'s mutex.
unsafe impl Send for Communicator {}

/// MPI's world with gradient sums on NCCL (see the module's documentation).
pub struct NcclGroup {
    mpi: MpiGroup,
    comm: Mutex<Communicator>,
    stream: Arc<CudaStream>,
    gpu: usize,
    timeout: Duration,
}

impl std::fmt::Debug for NcclGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclGroup")
            .field("rank", &self.mpi.rank())
            .field("world_size", &self.mpi.world_size())
            .field("gpu", &self.gpu)
            .finish()
    }
}

/// This process's index among the ranks of its node, as the launcher tells it.
fn local_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "SLURM_LOCALID",
        "MPI_LOCALRANKID",
        "PMI_LOCAL_RANK",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Whether CUDA's driver and NCCL can be loaded here.
pub fn nccl_available() -> std::result::Result<(), String> {
    // SAFETY: loading a shared library runs its initializers; libcuda's and libnccl's are
    // meant to be loaded this way (cudarc's dynamic loading).
    let (cuda, nccl) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nccl::sys::is_culib_present(),
        )
    };
    match (cuda, nccl) {
        (true, true) => Ok(()),
        (false, _) => Err("CUDA's driver library (libcuda.so) was not found".into()),
        (true, false) => Err("NCCL (libnccl.so.2) was not found".into()),
    }
}

/// The context and a stream of GPU `gpu`.
fn open_gpu(gpu: usize) -> std::result::Result<Arc<CudaStream>, String> {
    nccl_available()?;
    let count = CudaContext::device_count().map_err(|e| format!("{e:?}"))?;
    if gpu >= count.max(0) as usize {
        return Err(format!(
            "this rank wants GPU {gpu} but its node has {count}: NCCL needs one GPU per rank"
        ));
    }
    let ctx = CudaContext::new(gpu).map_err(|e| format!("GPU {gpu}: {e:?}"))?;
    ctx.new_stream().map_err(|e| format!("GPU {gpu}: {e:?}"))
}

impl NcclGroup {
    /// MPI's world with NCCL on GPU `local rank` of each node. Every rank opens its GPU
    /// first and the ranks agree on the outcome, so a rank without a GPU or NCCL makes every
    /// rank return an error (within MPI's timeout) rather than some waiting in NCCL forever.
    pub fn world() -> Result<NcclGroup> {
        let mpi = MpiGroup::world(ReduceOrder::Fast)?;
        let gpu = local_rank().unwrap_or(mpi.rank());
        let opened = open_gpu(gpu);
        let mut failed = [f64::from(u8::from(opened.is_err()))];
        mpi.all_reduce_sum_f64(&mut failed)?;
        let stream = opened.map_err(|e| nccl_error("opening this rank's GPU", e))?;
        if failed[0] > 0.0 {
            return Err(nccl_error(
                "opening the GPUs",
                format!("{} rank(s) could not open theirs", failed[0]),
            ));
        }
        // NCCL's unique id: made by rank 0, sent to every rank through MPI.
        let mut id_bytes = [0u8; 128];
        if mpi.is_main() {
            let id = Id::new().map_err(|e| nccl_error("ncclGetUniqueId", e))?;
            for (b, c) in id_bytes.iter_mut().zip(id.internal()) {
                *b = *c as u8;
            }
        }
        mpi.broadcast(&mut id_bytes, 0)?;
        let id = Id::uninit(id_bytes.map(|b| b as std::ffi::c_char));
        let comm = Comm::from_rank(stream.clone(), mpi.rank(), mpi.world_size(), id)
            .map_err(|e| nccl_error("ncclCommInitRank", e))?;
        let timeout = mpi.timeout();
        Ok(NcclGroup {
            mpi,
            comm: Mutex::new(Communicator(comm)),
            stream,
            gpu,
            timeout,
        })
    }

    /// The CUDA ordinal of this rank's GPU.
    pub fn gpu(&self) -> usize {
        self.gpu
    }

    fn comm(&self) -> MutexGuard<'_, Communicator> {
        self.comm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies `host` to the GPU and starts its sum over the ranks, all on the group's stream.
    fn launch<T: DeviceRepr + NcclType>(&self, host: Vec<T>) -> Result<NcclSum<T>> {
        let comm = self.comm();
        let copy = |e| nccl_error("copying to the GPU", e);
        let mut device = self.stream.clone_htod(&host).map_err(copy)?;
        comm.0
            .all_reduce_in_place(&mut device, &ReduceOp::Sum)
            .map_err(|e| nccl_error("ncclAllReduce", e))?;
        let done = self
            .stream
            .record_event(None)
            .map_err(|e| nccl_error("cuEventRecord", e))?;
        Ok(NcclSum {
            host,
            device,
            done,
            stream: self.stream.clone(),
            deadline: Instant::now() + self.timeout,
        })
    }

    fn sum<T: DeviceRepr + NcclType + Copy>(&self, buf: &mut [T]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let summed = self.launch(buf.to_vec())?.finish()?;
        buf.copy_from_slice(&summed);
        Ok(())
    }
}

impl ProcessGroup for NcclGroup {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }

    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.sum(buf)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.sum(buf)
    }

    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.mpi.broadcast(buf, root)
    }

    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }

    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Box<dyn PendingSum + '_>> {
        if buf.is_empty() {
            return Ok(Box::new(Summed(buf)));
        }
        Ok(Box::new(self.launch(buf)?))
    }
}

/// A sum in flight on the GPU: its buffers and the event recorded after it.
struct NcclSum<T: DeviceRepr> {
    host: Vec<T>,
    device: CudaSlice<T>,
    done: CudaEvent,
    stream: Arc<CudaStream>,
    deadline: Instant,
}

impl<T: DeviceRepr> NcclSum<T> {
    fn is_done(&self) -> Result<bool> {
        self.done
            .try_is_complete()
            .map_err(|e| nccl_error("ncclAllReduce (cuEventQuery)", e))
    }

    /// Waits (until the deadline) and copies the sum back.
    fn finish(mut self) -> Result<Vec<T>> {
        while !self.is_done()? {
            if Instant::now() > self.deadline {
                return Err(nccl_error(
                    "ncclAllReduce",
                    "the other ranks did not join the sum in time (EMBER_DIST_TIMEOUT_S)",
                ));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        let back = |e| nccl_error("copying from the GPU", e);
        self.stream
            .memcpy_dtoh(&self.device, &mut self.host)
            .map_err(back)?;
        self.stream.synchronize().map_err(back)?;
        Ok(self.host)
    }
}

impl PendingSum for NcclSum<f32> {
    fn poll(&mut self) -> Result<bool> {
        self.is_done()
    }

    fn wait(self: Box<Self>) -> Result<Vec<f32>> {
        (*self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a GPU (CI's machines) the group is an error naming what is missing, never a
    /// panic; with one, a group of one rank sums to the input.
    #[test]
    fn a_missing_gpu_is_an_error_and_one_rank_sums_to_itself() {
        match nccl_available() {
            Err(missing) => {
                eprintln!("SKIPPED (no CUDA/NCCL here): the one-rank NCCL sum: {missing}");
                let err = NcclGroup::world().unwrap_err().to_string();
                assert!(err.contains("was not found"), "{err}");
            }
            Ok(()) => {
                let group = NcclGroup::world().unwrap();
                let mut v = vec![1.5f32, -2.0, 3.25];
                group.all_reduce_sum(&mut v).unwrap();
                let n = group.world_size() as f32;
                assert_eq!(v, vec![1.5 * n, -2.0 * n, 3.25 * n]);
            }
        }
    }
}
