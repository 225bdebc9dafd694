//! Gradients summed over the ranks while the backward still runs (DDP's overlap): the
//! parameters are cut into buckets, last parameter first; as the autograd engine reports each
//! parameter's gradient complete ([`ember_core::Backward::backward_with_hook`]), it goes into
//! its bucket, and a full bucket's sum is started at once (buckets start in order, on every
//! rank alike), so the communication runs beside the rest of the backward.

use std::collections::HashMap;
use std::sync::Arc;

use ember_core::{Error, Gradients, Result, Tensor, TensorId, no_grad};
use ember_nn::Param;
use web_time::{Duration, Instant};

use crate::ddp::BUCKET_BYTES;
use crate::{PendingSum, ProcessGroup};

/// How a trainer runs data parallel: over which processes, in what buckets, overlapped or not.
#[derive(Debug, Clone)]
pub struct Ddp {
    /// The processes (`ember_dist::init`).
    pub group: Arc<dyn ProcessGroup>,
    /// Bytes of f32 gradients per sum (PyTorch's `bucket_cap_mb`, 25 MiB).
    pub bucket_bytes: usize,
    /// Start each bucket's sum during the backward as soon as it is full (PyTorch DDP's way);
    /// `false` sums all buckets after the backward.
    pub overlap: bool,
}

impl Ddp {
    /// DDP over `group` with PyTorch's defaults: 25 MiB buckets, overlapped.
    pub fn new(group: Arc<dyn ProcessGroup>) -> Ddp {
        Ddp {
            group,
            bucket_bytes: BUCKET_BYTES,
            overlap: true,
        }
    }
}

struct Bucket<'g> {
    /// Indices into `Reducer::params`.
    members: Vec<usize>,
    buf: Vec<f32>,
    filled: usize,
    pending: Option<Box<dyn PendingSum + 'g>>,
}

/// One step's gradient sums in flight (see the module docs).
pub struct Reducer<'g> {
    group: &'g dyn ProcessGroup,
    /// Last parameter first.
    params: Vec<Param>,
    /// Per parameter id: (bucket, offset in it, index in `params`).
    slots: HashMap<TensorId, (usize, usize, usize)>,
    filled: Vec<bool>,
    buckets: Vec<Bucket<'g>>,
    next: usize,
    /// The gradients of this rank's earlier micro-batches of the step.
    earlier: Gradients,
    waited: Duration,
}

impl<'g> Reducer<'g> {
    /// Buckets for `params` (as [`crate::ddp::all_reduce_gradients`] cuts them), with this
    /// rank's gradients of the step's earlier micro-batches, `earlier`, to add.
    pub fn new(
        params: &[Param],
        group: &'g dyn ProcessGroup,
        bucket_bytes: usize,
        earlier: Gradients,
    ) -> Reducer<'g> {
        let per_bucket = (bucket_bytes / 4).max(1);
        let params: Vec<Param> = params.iter().rev().cloned().collect();
        let (mut slots, mut buckets) = (HashMap::new(), Vec::new());
        let mut current = Bucket {
            members: Vec::new(),
            buf: Vec::new(),
            filled: 0,
            pending: None,
        };
        for (i, p) in params.iter().enumerate() {
            let t = p.tensor();
            slots.insert(t.id(), (buckets.len(), current.buf.len(), i));
            current.members.push(i);
            current.buf.resize(current.buf.len() + t.numel(), 0.0);
            if current.buf.len() >= per_bucket {
                let next = Bucket {
                    members: Vec::new(),
                    buf: Vec::new(),
                    filled: 0,
                    pending: None,
                };
                buckets.push(std::mem::replace(&mut current, next));
            }
        }
        if !current.members.is_empty() {
            buckets.push(current);
        }
        Reducer {
            group,
            filled: vec![false; params.len()],
            params,
            slots,
            buckets,
            next: 0,
            earlier,
            waited: Duration::ZERO,
        }
    }

    /// The hook of [`ember_core::Backward::backward_with_hook`]: `grad` is `leaf`'s complete
    /// gradient of this micro-batch (leaves that are not trained parameters are ignored).
    pub fn on_final(&mut self, leaf: &Tensor, grad: &Tensor) -> Result<()> {
        let Some(&(b, start, i)) = self.slots.get(&leaf.id()) else {
            return Ok(());
        };
        if self.filled[i] {
            return Err(Error::internal(
                "Reducer",
                format!("{} was reported complete twice", self.params[i].name()),
            ));
        }
        let total = self.with_earlier(leaf, Some(grad.clone()))?;
        self.fill(b, start, i, total)?;
        self.start_full()?;
        // MPI progresses started sums only inside its calls.
        for bucket in &mut self.buckets[..self.next] {
            if let Some(p) = &mut bucket.pending {
                p.poll()?;
            }
        }
        Ok(())
    }

    /// `grad` plus the earlier micro-batches' gradient, added as `Gradients::accumulate` adds.
    fn with_earlier(&mut self, leaf: &Tensor, grad: Option<Tensor>) -> Result<Option<Tensor>> {
        Ok(match (self.earlier.remove(leaf), grad) {
            (Some(prev), Some(g)) => {
                let (mut sum, mut new) = (Gradients::default(), Gradients::default());
                sum.insert(leaf, prev);
                new.insert(leaf, g);
                sum.accumulate(new)?;
                sum.remove(leaf)
            }
            (prev, g) => g.or(prev),
        })
    }

    fn fill(&mut self, b: usize, start: usize, i: usize, grad: Option<Tensor>) -> Result<()> {
        if let Some(g) = grad {
            let _guard = no_grad();
            let values = g.to_dtype(ember_core::DType::F32)?.to_vec::<f32>()?;
            self.buckets[b].buf[start..start + values.len()].copy_from_slice(&values);
        }
        self.filled[i] = true;
        self.buckets[b].filled += 1;
        Ok(())
    }

    /// Starts the full buckets, in order.
    fn start_full(&mut self) -> Result<()> {
        while let Some(bucket) = self.buckets.get_mut(self.next) {
            if bucket.filled < bucket.members.len() {
                break;
            }
            let buf = std::mem::take(&mut bucket.buf);
            bucket.pending = Some(self.group.start_all_reduce_sum(buf)?);
            self.next += 1;
        }
        Ok(())
    }

    /// Fills what the hook was not told about from `local` (the gradients the backward
    /// returned; the hook reports every leaf an op consumed, so normally nothing) plus the
    /// earlier micro-batches' (or zeros), waits for every sum and returns the summed
    /// gradients with the time spent waiting.
    pub fn finish(mut self, mut local: Gradients) -> Result<(Gradients, Duration)> {
        for i in 0..self.params.len() {
            if !self.filled[i] {
                let t = self.params[i].tensor();
                let (b, start, _) = self.slots[&t.id()];
                let g = self.with_earlier(&t, local.remove(&t))?;
                self.fill(b, start, i, g)?;
            }
        }
        self.start_full()?;
        let mut out = Gradients::default();
        let _guard = no_grad();
        for bucket in std::mem::take(&mut self.buckets) {
            let pending = bucket
                .pending
                .ok_or_else(|| Error::internal("Reducer", "a bucket was never started"))?;
            let started = Instant::now();
            let summed = pending.wait()?;
            self.waited += started.elapsed();
            let mut at = 0;
            for i in bucket.members {
                let t = self.params[i].tensor();
                let n = t.numel();
                let g = Tensor::from_vec(summed[at..at + n].to_vec(), t.dims(), t.device())?;
                out.insert(&t, g.to_dtype(t.dtype())?);
                at += n;
            }
        }
        Ok((out, self.waited))
    }
}
