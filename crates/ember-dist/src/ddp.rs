//! DistributedDataParallel's synchronisation for Ember's autograd: rank 0's parameters
//! everywhere at the start (checked), and gradients summed over the ranks in buckets, last
//! parameter first, as PyTorch's DDP buckets them.

use ember_core::{DType, Error, Gradients, Result, Tensor, no_grad};
use ember_nn::Param;

use crate::ProcessGroup;

/// Bytes of gradients per all-reduce (PyTorch's `bucket_cap_mb` default, 25 MiB).
pub const BUCKET_BYTES: usize = 25 << 20;

/// 64-bit FNV-1a, to compare what ranks hold without sending it.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// Checks that every rank's `hash` is rank 0's: the hash's two 32-bit halves are summed over
/// the ranks (exact in f64) and must be `world` times this rank's.
fn same_everywhere(group: &dyn ProcessGroup, hash: u64, what: &str) -> Result<()> {
    let halves = [(hash >> 32) as f64, (hash & 0xffff_ffff) as f64];
    let mut summed = halves;
    group.all_reduce_sum_f64(&mut summed)?;
    let world = group.world_size() as f64;
    if summed[0] != halves[0] * world || summed[1] != halves[1] * world {
        return Err(Error::data(
            "ddp",
            format!(
                "rank {} of {}: {what} differ between ranks",
                group.rank(),
                group.world_size()
            ),
        ));
    }
    Ok(())
}

/// The values of `t` as f32 (exact for f32, bf16 and f16 parameters).
fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.to_vec::<f32>()
}

/// Copies rank 0's values of `params` (in the given order, the same on every rank: e.g.
/// [`ember_nn::VarStore::named_parameters`]) to every rank, after checking that the ranks hold
/// the same names and shapes; then checks that the values arrived. Quantized parameters are
/// skipped (they load from the same file on every rank and are never trained).
pub fn broadcast_parameters(params: &[Param], group: &dyn ProcessGroup) -> Result<()> {
    let mut layout = 0xcbf2_9ce4_8422_2325u64;
    for p in params {
        fnv(&mut layout, p.name().as_bytes());
        for d in p.dims() {
            fnv(&mut layout, &(d as u64).to_le_bytes());
        }
    }
    same_everywhere(group, layout, "the parameters' names or shapes")?;
    if group.world_size() == 1 {
        return Ok(());
    }
    let _guard = no_grad();
    for p in params.iter().filter(|p| p.quantized().is_none()) {
        let t = p.tensor();
        let mut bytes: Vec<u8> = values(&t)?.iter().flat_map(|v| v.to_le_bytes()).collect();
        group.broadcast(&mut bytes, 0)?;
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let value = Tensor::from_vec(floats, t.dims(), t.device())?.to_dtype(t.dtype())?;
        p.set(&value)?;
    }
    check_parameters_equal(params, group)
}

/// Errors unless every rank holds the same bits in `params` (a hash compared over the ranks).
pub fn check_parameters_equal(params: &[Param], group: &dyn ProcessGroup) -> Result<()> {
    let _guard = no_grad();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for p in params.iter().filter(|p| p.quantized().is_none()) {
        fnv(&mut hash, p.name().as_bytes());
        for v in values(&p.tensor())? {
            fnv(&mut hash, &v.to_bits().to_le_bytes());
        }
    }
    same_everywhere(group, hash, "the parameters' values")
}

/// Replaces each gradient of `params` by its sum over the ranks, `bucket_bytes` of f32 per
/// all-reduce, last parameter first. A parameter without a gradient on this rank adds zeros
/// (and receives the sum), so ranks may leave different parameters unused.
pub fn all_reduce_gradients(
    grads: &mut Gradients,
    params: &[Param],
    group: &dyn ProcessGroup,
    bucket_bytes: usize,
) -> Result<()> {
    if group.world_size() == 1 {
        return Ok(());
    }
    let _guard = no_grad();
    let per_bucket = (bucket_bytes / 4).max(1);
    let mut bucket: Vec<f32> = Vec::new();
    let mut members: Vec<(&Param, usize, usize)> = Vec::new(); // (param, start, len)
    let flush = |bucket: &mut Vec<f32>,
                 members: &mut Vec<(&Param, usize, usize)>,
                 grads: &mut Gradients|
     -> Result<()> {
        if bucket.is_empty() {
            return Ok(());
        }
        group.all_reduce_sum(bucket)?;
        for (p, start, len) in members.drain(..) {
            let t = p.tensor();
            let dtype = grads.get(&t).map_or(t.dtype(), Tensor::dtype);
            let g = Tensor::from_vec(bucket[start..start + len].to_vec(), t.dims(), t.device())?
                .to_dtype(dtype)?;
            grads.insert(&t, g);
        }
        bucket.clear();
        Ok(())
    };
    for p in params.iter().rev() {
        let t = p.tensor();
        let len = t.numel();
        let start = bucket.len();
        match grads.get(&t) {
            Some(g) => bucket.extend(values(g)?),
            None => bucket.resize(start + len, 0.0),
        }
        members.push((p, start, len));
        if bucket.len() >= per_bucket {
            flush(&mut bucket, &mut members, grads)?;
        }
    }
    flush(&mut bucket, &mut members, grads)
}
