//! The MPI backend (rsmpi over the system's MPI): every collective is started non-blocking and
//! polled against a deadline, so a rank that died or never calls makes the others return an
//! error instead of hanging.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ember_core::{Error, Result};
use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::request::{Request, StaticScope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::group::{PendingSum, ProcessGroup, ReduceOrder, Summed};

/// How long a collective waits for the other ranks, unless `EMBER_DIST_TIMEOUT_S` says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// MPI's environment: initialized by the first [`MpiGroup::world`], finalized when the last
/// group is dropped (MPI cannot start again after that).
struct World {
    _universe: Universe,
    comm: SimpleCommunicator,
}

/// This process's MPI state.
struct State {
    world: Option<World>,
    /// Live [`MpiGroup`]s.
    groups: usize,
    finalized: bool,
}

// SAFETY: MPI is initialized with at least MPI_THREAD_SERIALIZED and every use of `comm`
// happens under `STATE`'s mutex, so calls never overlap.
unsafe impl Send for World {}

static STATE: Mutex<State> = Mutex::new(State {
    world: None,
    groups: 0,
    finalized: false,
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// MPI's world communicator as a [`ProcessGroup`].
#[derive(Debug)]
pub struct MpiGroup {
    rank: usize,
    size: usize,
    order: ReduceOrder,
    timeout: Duration,
}

/// A buffer lent to MPI for a non-blocking call: leaked while MPI may write it, taken back
/// once the call completed (and left leaked if it never does).
struct Lent<T: 'static> {
    ptr: *mut T,
    len: usize,
}

impl<T: 'static> Lent<T> {
    fn new(values: Vec<T>) -> (Lent<T>, &'static mut [T]) {
        let slice: &'static mut [T] = Box::leak(values.into_boxed_slice());
        let lent = Lent {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
        };
        (lent, slice)
    }

    /// The buffer back.
    ///
    /// # Safety
    /// The call it was lent to has completed, and the `&'static mut` given to it is gone.
    unsafe fn take(self) -> Vec<T> {
        // SAFETY: `ptr`/`len` came from a leaked boxed slice (`new`) that nothing else uses
        // any more (the caller's promise).
        unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)).into_vec() }
    }
}

fn dist_error(what: &str, msg: impl Into<String>) -> Error {
    Error::data("ProcessGroup", format!("{what}: {}", msg.into()))
}

impl MpiGroup {
    /// Initializes MPI (once per process) and returns its world, summing in `order`. MPI is
    /// finalized when the last group is dropped; a group asked for after that is an error.
    pub fn world(order: ReduceOrder) -> Result<MpiGroup> {
        let mut st = state();
        if st.finalized {
            return Err(dist_error(
                "MPI_Init",
                "MPI was finalized when the last group was dropped; keep a group alive",
            ));
        }
        if st.world.is_none() {
            let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
                .ok_or_else(|| dist_error("MPI_Init", "MPI was initialized by someone else"))?;
            if threading < Threading::Serialized {
                return Err(dist_error(
                    "MPI_Init",
                    format!("the MPI library grants only {threading:?} threading"),
                ));
            }
            let comm = universe.world();
            st.world = Some(World {
                _universe: universe,
                comm,
            });
        }
        let Some(w) = &st.world else {
            return Err(dist_error("MPI_Init", "no world"));
        };
        let (rank, size) = (w.comm.rank() as usize, w.comm.size() as usize);
        st.groups += 1;
        let timeout = std::env::var("EMBER_DIST_TIMEOUT_S")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        Ok(MpiGroup {
            rank,
            size,
            order,
            timeout,
        })
    }

    /// How long a collective waits for the other ranks.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same group with collectives giving up after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> MpiGroup {
        self.timeout = timeout;
        self
    }

    fn comm<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> Result<R>) -> Result<R> {
        let st = state();
        let w = st
            .world
            .as_ref()
            .ok_or_else(|| dist_error("MPI", "not initialized"))?;
        f(&w.comm)
    }

    /// Polls `req` until it completes or the timeout passes.
    fn wait<D: ?Sized>(&self, mut req: Request<'static, D, StaticScope>, what: &str) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mut polls = 0u32;
        loop {
            match req.test() {
                Ok(_) => return Ok(()),
                Err(pending) => req = pending,
            }
            if Instant::now() >= deadline {
                // MPI may still use the buffers: the request and its buffers stay leaked.
                std::mem::forget(req);
                return Err(dist_error(
                    what,
                    format!(
                        "rank {} of {}: no answer from the other ranks in {:.0} s (a rank \
                         died, or called a different collective); the group is unusable now",
                        self.rank,
                        self.size,
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
            polls += 1;
            if polls < 2000 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    fn sum<T>(&self, buf: &mut [T], what: &str) -> Result<()>
    where
        T: Equivalence + Copy + Default + std::ops::Add<Output = T> + 'static,
    {
        match self.order {
            ReduceOrder::Fast => self.comm(|comm| {
                let (send, s) = Lent::new(buf.to_vec());
                let (recv, r) = Lent::new(vec![T::default(); buf.len()]);
                let req =
                    comm.immediate_all_reduce_into(StaticScope, &*s, r, SystemOperation::sum());
                self.wait(req, what)?;
                // SAFETY: the all-reduce completed; its references went with the request.
                let (_, out) = unsafe { (send.take(), recv.take()) };
                buf.copy_from_slice(&out);
                Ok(())
            }),
            ReduceOrder::RankOrder => {
                let n = buf.len();
                let gathered = self.comm(|comm| {
                    let root = comm.process_at_rank(0);
                    let (send, s) = Lent::new(buf.to_vec());
                    if self.rank == 0 {
                        let (recv, r) = Lent::new(vec![T::default(); n * self.size]);
                        let req = root.immediate_gather_into_root(StaticScope, &*s, r);
                        self.wait(req, what)?;
                        // SAFETY: the gather completed; its references went with the request.
                        let (_, all) = unsafe { (send.take(), recv.take()) };
                        Ok(Some(all))
                    } else {
                        let req = root.immediate_gather_into(StaticScope, &*s);
                        self.wait(req, what)?;
                        // SAFETY: as above.
                        drop(unsafe { send.take() });
                        Ok(None)
                    }
                })?;
                if let Some(all) = gathered {
                    buf.copy_from_slice(&all[..n]);
                    for rank in all.chunks_exact(n).skip(1) {
                        for (b, v) in buf.iter_mut().zip(rank) {
                            *b = *b + *v;
                        }
                    }
                }
                self.broadcast_values(buf, 0, what)
            }
        }
    }

    fn broadcast_values<T: Equivalence + Copy + 'static>(
        &self,
        buf: &mut [T],
        root: usize,
        what: &str,
    ) -> Result<()> {
        if root >= self.size {
            return Err(dist_error(
                what,
                format!("root {root} in a group of {}", self.size),
            ));
        }
        self.comm(|comm| {
            let (lent, b) = Lent::new(buf.to_vec());
            let req = comm
                .process_at_rank(root as i32)
                .immediate_broadcast_into(StaticScope, b);
            self.wait(req, what)?;
            // SAFETY: the broadcast completed; its reference went with the request.
            buf.copy_from_slice(&unsafe { lent.take() });
            Ok(())
        })
    }
}

impl Drop for MpiGroup {
    fn drop(&mut self) {
        let mut st = state();
        st.groups = st.groups.saturating_sub(1);
        if st.groups == 0 {
            // Dropping the universe calls MPI_Finalize.
            st.world = None;
            st.finalized = true;
        }
    }
}

impl ProcessGroup for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.sum(buf, "all_reduce_sum")
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.sum(buf, "all_reduce_sum_f64")
    }

    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        self.broadcast_values(buf, root, "broadcast")
    }

    fn barrier(&self) -> Result<()> {
        self.comm(|comm| self.wait(comm.immediate_barrier(), "barrier"))
    }

    fn start_all_reduce_sum(&self, buf: Vec<f32>) -> Result<Box<dyn PendingSum + '_>> {
        if self.order == ReduceOrder::RankOrder {
            let mut buf = buf;
            self.all_reduce_sum(&mut buf)?;
            return Ok(Box::new(Summed(buf)));
        }
        self.comm(|comm| {
            let n = buf.len();
            let (send, s) = Lent::new(buf);
            let (recv, r) = Lent::new(vec![0f32; n]);
            let req = comm.immediate_all_reduce_into(StaticScope, &*s, r, SystemOperation::sum());
            Ok(Box::new(Started {
                group: self,
                req: Some(req),
                send: Some(send),
                recv: Some(recv),
            }) as Box<dyn PendingSum + '_>)
        })
    }
}

/// A non-blocking sum in flight.
struct Started<'g> {
    group: &'g MpiGroup,
    req: Option<Request<'static, [f32], StaticScope>>,
    send: Option<Lent<f32>>,
    recv: Option<Lent<f32>>,
}

impl PendingSum for Started<'_> {
    fn poll(&mut self) -> Result<bool> {
        let _serial = state();
        match self.req.take().map(Request::test) {
            None | Some(Ok(_)) => Ok(true),
            Some(Err(pending)) => {
                self.req = Some(pending);
                Ok(false)
            }
        }
    }

    fn wait(mut self: Box<Self>) -> Result<Vec<f32>> {
        if let Some(req) = self.req.take() {
            let _serial = state();
            self.group.wait(req, "all_reduce_sum")?;
        }
        match (self.send.take(), self.recv.take()) {
            // SAFETY: the all-reduce completed (tested or waited above); its references went
            // with the request.
            (Some(send), Some(recv)) => unsafe {
                drop(send.take());
                Ok(recv.take())
            },
            _ => Err(dist_error("all_reduce_sum", "the sum was collected twice")),
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        // Dropped before completing (an error elsewhere): MPI may still use the buffers, which
        // stay leaked with the request.
        if let Some(req) = self.req.take() {
            std::mem::forget(req);
        }
    }
}
