//! A tensor that grows along one dim, as a KV cache does during decoding.
//!
//! f32 on the CPU: the buffer keeps spare room (doubling, at least 16 positions) and each
//! append writes in place (`cpu::storage::write_along`), so a decoding step does not copy the
//! whole cache. Elsewhere, when the buffer is shared (a cloned cache, a view still held) or
//! when gradients flow through it: concatenation into a buffer exactly as long as its
//! contents.

use super::cpu::storage as cpu;
use super::trace::{Impl, note};
use crate::{Error, Result, Tensor};

/// A growing tensor: [`AppendBuffer::append`] adds entries along a dim and returns every entry
/// so far. Cloning shares the buffer until one of the clones appends (then it copies).
///
/// ```
/// use ember_core::fused::AppendBuffer;
/// use ember_core::{DType, Device, Tensor};
/// let mut keys = AppendBuffer::new();
/// let step = Tensor::ones(&[1, 2, 1, 4], DType::F32, Device::Cpu)?; // (B, H, 1, D)
/// keys.append(2, &step)?;
/// let all = keys.append(2, &step)?;
/// assert_eq!(all.dims(), &[1, 2, 2, 4]);
/// assert_eq!(keys.len(), 2);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AppendBuffer {
    /// Positions `..len` along the append dim are filled; the rest is spare room.
    buf: Option<Tensor>,
    len: usize,
}

impl AppendBuffer {
    /// An empty buffer.
    pub fn new() -> AppendBuffer {
        AppendBuffer::default()
    }

    /// Entries appended so far along the append dim.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first append.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `len` entries (all when there are fewer); the next append writes after
    /// them. Views returned earlier keep their contents.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `new` along `dim` (its other dims, dtype and device must match earlier
    /// appends) and returns all entries so far. On error the buffer is unchanged.
    pub fn append(&mut self, dim: usize, new: &Tensor) -> Result<Tensor> {
        const OP: &str = "AppendBuffer::append";
        if dim >= new.rank() {
            return Err(Error::DimOutOfRange {
                op: OP,
                dim: dim as isize,
                rank: new.rank(),
            });
        }
        let total = self.len + new.dims()[dim];
        let buf = match self.buf.take() {
            None => regrow(None, 0, dim, new),
            Some(buf) if buf.rank() != new.rank() || total > buf.dims()[dim] => {
                let grown = regrow(Some(&buf), self.len, dim, new);
                self.buf = Some(buf); // restored if growing failed, replaced below if not
                grown
            }
            Some(buf) => match write_in_place(buf, dim, self.len, new) {
                Ok(filled) => Ok(filled),
                Err(buf) => {
                    let grown = regrow(Some(&buf), self.len, dim, new);
                    self.buf = Some(buf);
                    grown
                }
            },
        }?;
        let view = buf.narrow(dim as isize, 0, total)?;
        (self.buf, self.len) = (Some(buf), total);
        Ok(view)
    }
}

/// `new` written into `buf` at position `at` along `dim`, when the kernel applies and no
/// gradient flows through either (a write would bypass the graph).
fn write_in_place(buf: Tensor, dim: usize, at: usize, new: &Tensor) -> Result<Tensor, Tensor> {
    if buf.is_tracked() || new.is_tracked() {
        return Err(buf);
    }
    let shape = buf.shape();
    match cpu::write_along(buf.into_prim(), dim, at, &new.prim()) {
        Ok(p) => {
            note("append", Impl::CpuF32);
            Ok(new.wrap(p, shape))
        }
        Err(p) => Err(new.wrap(p, shape)),
    }
}

/// A new buffer holding `old[.., ..len]` then `new`; on the CPU (f32, untracked) with room for
/// as many positions again (at least 16), elsewhere exactly as long as its contents (`new`
/// itself for a first append).
fn regrow(old: Option<&Tensor>, len: usize, dim: usize, new: &Tensor) -> Result<Tensor> {
    let d = dim as isize;
    let content = match old {
        Some(o) if len > 0 => Tensor::cat(&[&o.narrow(d, 0, len)?, new], d)?,
        _ => new.clone(),
    };
    // Tracked contents are never written in place: spare room would only be a copy that
    // the graph keeps (a training forward through an empty cache).
    if !cpu::is_cpu_f32(&content.prim()) || content.is_tracked() {
        note("append", Impl::Composed);
        return Ok(content);
    }
    note("append", Impl::CpuF32);
    let mut spare = content.dims().to_vec();
    spare[dim] = content.dims()[dim].max(16);
    let room = Tensor::zeros(&spare, content.dtype(), content.device())?;
    Tensor::cat(&[&content, &room], d)
}
