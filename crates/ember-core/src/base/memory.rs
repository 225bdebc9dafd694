//! How much memory an allocation may ask for: every size that comes from outside (a shape, a
//! config, a flag) is checked here before anything is allocated, so an impossible request is
//! an [`Error::TooLarge`] instead of an abort.

use std::sync::OnceLock;

use crate::{DType, Device, Error, Result};

/// The bytes a device can hold: the machine's physical memory for the CPU (`MemTotal` in
/// `/proc/meminfo`; 2^48 where that cannot be read), and the same bound for GPUs, whose
/// buffers are staged through host memory.
pub fn available(device: Device) -> u128 {
    let _ = device;
    static TOTAL: OnceLock<u128> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(1 << 48)
    })
}

/// Checks that `count` elements of `dtype` (a product of `dims`, computed without overflow)
/// fit on `device`; returns the bytes. `what` describes the allocation for the error.
pub fn check_elements(
    op: &'static str,
    dims: &[usize],
    dtype: DType,
    device: Device,
    what: impl FnOnce() -> String,
) -> Result<u128> {
    let bytes = dims
        .iter()
        .try_fold(dtype.size_in_bytes() as u128, |acc, &d| {
            acc.checked_mul(d as u128)
        });
    check_bytes(op, bytes, device, what)
}

/// Checks that `bytes` (`None`: overflowed) fit on `device`.
pub fn check_bytes(
    op: &'static str,
    bytes: Option<u128>,
    device: Device,
    what: impl FnOnce() -> String,
) -> Result<u128> {
    let available = available(device);
    match bytes {
        Some(b) if b <= available && b <= isize::MAX as u128 => Ok(b),
        _ => Err(Error::TooLarge {
            op,
            what: what(),
            bytes,
            device,
            available,
        }),
    }
}

/// Checks a tensor of `shape` and `dtype` about to be created on `device`.
pub(crate) fn check_tensor(
    op: &'static str,
    shape: &[usize],
    dtype: DType,
    device: Device,
) -> Result<()> {
    check_elements(op, shape, dtype, device, || {
        format!("a tensor of shape {shape:?} {dtype}")
    })
    .map(|_| ())
}
