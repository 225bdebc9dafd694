//! Which implementation each kernel entry chose, recorded on request: for tests that must
//! know a kernel ran (not only that the values were right) and for profiling.

use std::cell::RefCell;

/// How a kernel entry computed its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// Ember's own f32 CPU kernel (`kernels::cpu`).
    CpuF32,
    /// Ember's f32 GEMM on WebAssembly SIMD128 (products of more than a few rows in the
    /// browser build; `CpuF32` natively).
    CpuF32Simd128,
    /// Ember's tiled CPU attention with an online softmax: memory linear in the sequence.
    CpuF32Tiled,
    /// Ember's bf16 CPU kernel (AVX512_BF16 dot products, f32 accumulation).
    CpuBf16,
    /// Ember's bf16 product on AMX tiles (`tdpbf16ps`, f32 accumulation), or on their scalar
    /// emulator under `EMBER_SIMD=amx-emulated`.
    CpuBf16Amx,
    /// bf16 inputs widened to f32 for Ember's f32 CPU kernel, the result rounded back to bf16.
    CpuBf16ViaF32,
    /// Ember's quantized product: integer dot products of weight blocks with activations
    /// quantized to 8 bits, on AVX512-VNNI (`vpdpbusd`).
    CpuInt8Vnni,
    /// The quantized product's integer sums on AMX tiles (`tdpbsud`), or their emulator under
    /// `EMBER_SIMD=amx-emulated`: bit-identical to `CpuInt8Vnni`.
    CpuInt8Amx,
    /// The quantized product on AVX2 (`vpmaddubsw`), for CPUs without AVX512-VNNI.
    CpuInt8Avx2,
    /// The quantized product on WebAssembly SIMD128.
    CpuInt8Simd128,
    /// The same quantized product computed portably (no AVX2 on this CPU).
    CpuInt8,
    /// The composed definition from burn primitives (every other device and dtype).
    Composed,
    /// The composed definition evaluated a block of rows at a time, so its largest
    /// intermediate never exists whole (the logits of a fused linear cross-entropy).
    Blocked,
}

/// One kernel entry's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelUse {
    /// The entry, e.g. `"layer_norm_backward"`.
    pub entry: &'static str,
    /// The implementation it ran.
    pub implementation: Impl,
}

thread_local! {
    static TRACE: RefCell<Option<Vec<KernelUse>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, besides its result, every kernel entry that `f` reached on this
/// thread, in order, with the implementation each chose.
///
/// ```
/// use ember_core::{DType, Device, Impl, Tensor, trace_kernels};
/// let x = Tensor::randn(&[4, 8], DType::F32, Device::Cpu)?;
/// let (_, used) = trace_kernels(|| x.gelu());
/// assert_eq!(used[0].entry, "gelu");
/// assert_eq!(used[0].implementation, Impl::CpuF32);
/// let (_, used) = trace_kernels(|| x.to_dtype(DType::F64)?.gelu());
/// assert_eq!(used[0].implementation, Impl::Composed); // no f64 kernel
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn trace_kernels<T>(f: impl FnOnce() -> T) -> (T, Vec<KernelUse>) {
    let outer = TRACE.with(|t| t.borrow_mut().replace(Vec::new()));
    let out = f();
    let used = TRACE.with(|t| {
        let mut slot = t.borrow_mut();
        let used = slot.take().unwrap_or_default();
        if let Some(mut outer) = outer {
            outer.extend(used.iter().copied());
            *slot = Some(outer);
        }
        used
    });
    (out, used)
}

/// Records a choice when a trace is being taken (one thread-local read otherwise).
pub(crate) fn note(entry: &'static str, implementation: Impl) {
    TRACE.with(|t| {
        if let Some(v) = t.borrow_mut().as_mut() {
            v.push(KernelUse {
                entry,
                implementation,
            });
        }
    });
}
