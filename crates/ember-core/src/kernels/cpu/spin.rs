//! A small pool for the many short parallel calls of decoding (a product of one token with
//! each weight, hundreds per token): the calling thread works too, and the helpers spin a
//! while between calls instead of sleeping, so a call costs a few hundred nanoseconds rather
//! than the wake-ups that handing every call to rayon from outside its pool costs (measured:
//! a third of a decoded token's time in the scheduler). Helpers park after
//! [`SPIN`] without work.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use web_time::{Duration, Instant};

/// How long an idle helper spins before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// The job being run: a task function and its counters.
struct Job {
    /// `&dyn Fn(usize)` with its lifetime erased; valid while `pending > 0`.
    task: *const (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    /// Helpers holding a reference to this job (taken under the pool's lock).
    active: AtomicUsize,
}

struct Pool {
    helpers: usize,
    /// Incremented for each job; helpers watch it.
    generation: AtomicUsize,
    job: Mutex<Option<*const Job>>,
    wake: Condvar,
    /// Held by the caller of a job (one job at a time; others run inline).
    busy: AtomicBool,
}

// SAFETY: the raw pointers are only dereferenced while the job they point to is alive (the
// caller waits for every task to finish before its job goes out of scope).
// Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
unsafe impl Send for Pool {}
// SAFETY: as above; the shared state is atomics and a mutex-guarded slot.
// Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
unsafe impl Sync for Pool {}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            helpers,
            generation: AtomicUsize::new(0),
            job: Mutex::new(None),
            wake: Condvar::new(),
            busy: AtomicBool::new(false),
        }));
        for i in 0..helpers {
            let _ = std::thread::Builder::new()
                .name(format!("ember-spin-{i}"))
                .spawn(move || helper(pool));
        }
        pool
    })
}

/// Claims and runs tasks of `job` until none are left.
fn work(job: &Job) {
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.tasks {
            return;
        }
        // SAFETY: the job's caller keeps `task` alive until `done` reaches `tasks`.
        // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
        unsafe { (*job.task)(i) };
        job.done.fetch_add(1, Ordering::Release);
    }
}

fn helper(pool: &'static Pool) {
    let mut seen = 0;
    loop {
        let start = Instant::now();
        // Spin for a new generation, then park.
        while pool.generation.load(Ordering::Acquire) == seen {
            if start.elapsed() > SPIN {
                let guard = pool.job.lock().unwrap_or_else(|e| e.into_inner());
                let _g = pool
                    .wake
                    .wait_while(guard, |_| pool.generation.load(Ordering::Acquire) == seen)
                    .unwrap_or_else(|e| e.into_inner());
                break;
            }
            std::hint::spin_loop();
        }
        seen = pool.generation.load(Ordering::Acquire);
        let job = {
            let slot = pool.job.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: a job in the slot is alive; registering under the lock keeps it alive
            // until `active` drops back (its caller clears the slot, then waits for that).
            let job = *slot;
            if let Some(j) = job {
                // SAFETY: as said above, the job behind `j` is alive here.
                // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
                unsafe { (*j).active.fetch_add(1, Ordering::AcqRel) };
            }
            job
        };
        if let Some(job) = job {
            // SAFETY: registered above.
            // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
            let job = unsafe { &*job };
            work(job);
            job.active.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Runs `task(0..tasks)` on the calling thread and the pool's helpers; returns when all are
/// done. Falls back to running them inline when another call holds the pool.
pub(crate) fn run(tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    let pool = pool();
    if tasks <= 1 || pool.helpers == 0 || pool.busy.swap(true, Ordering::Acquire) {
        (0..tasks).for_each(task);
        return;
    }
    // SAFETY: the lifetime is erased only for the duration of this call: every task has
    // finished (`done == tasks`) before `job` and `task` go out of scope.
    // Exercised under AddressSanitizer (scripts/memcheck.sh) by tests/quant.rs.
    let task: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
    let job = Job {
        task,
        tasks,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
    };
    {
        let mut slot = pool.job.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(&job as *const Job);
        pool.generation.fetch_add(1, Ordering::Release);
        pool.wake.notify_all();
    }
    work(&job);
    while job.done.load(Ordering::Acquire) < tasks {
        std::hint::spin_loop();
    }
    *pool.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    // No helper registers any more; wait for those that did to let go.
    while job.active.load(Ordering::Acquire) != 0 {
        std::hint::spin_loop();
    }
    pool.busy.store(false, Ordering::Release);
}
