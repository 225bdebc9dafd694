//! Ember's own CPU kernels (f32, bf16 and int8): one pass over memory where the composed
//! primitives would make five to fifteen, and products that skip burn-flex's extra copies.
//!
//! Each function reads burn-flex's storage directly and returns `None` (or hands its input
//! back) when it does not apply: not on the CPU, not its dtype, a layout it does not take,
//! shapes that do not match. The kernel entries one level up (`kernels::*`) then run the
//! composed definition, which stays the reference on every other device and dtype. Loops are
//! written so that LLVM vectorizes them and compiled three times (AVX-512, AVX2+FMA,
//! baseline) by [`simd_kernel!`](simd::simd_kernel), the widest chosen at run time; work is
//! split over rayon's pool.
//!
//! | file | what |
//! |---|---|
//! | `isa` | what this CPU runs, detected once (the only CPU feature detection; `EMBER_SIMD` caps it) |
//! | `probe` | instruction timings where speed, not the vendor, picks a kernel |
//! | `par` | work splitting: blocks per task, the shared output buffer, few-row product splits |
//! | `simd` | the dispatch macro, vectorizable `exp`/`erf`/`tanh`, sums, maps over storage |
//! | `shared` | storage shared with NumPy and DLPack: contiguous bytes in place, primitives over foreign bytes |
//! | `storage` | burn-flex storage access, in-place writes, views, strides |
//! | `bf16` | bf16 storage as raw bits, conversions to and from f32, bf16 maps and accumulation |
//! | `spin` | a spinning pool for the short parallel calls of decoding |
//! | `amx/` | AMX tiles: backend (tiles or the scalar emulator), permission, micro-kernels |
//! | `gemm/` | every matrix product on slices: f32, bf16 and its packing, int8 and its packing, few-row streams, attention tiles |
//! | `activation` | GELU (erf and tanh), SiLU and SwiGLU's product, with gradients |
//! | `accumulate` | in-place f32 gradient accumulation |
//! | `norm` | layer norm and RMS norm, forward and backward |
//! | `softmax` | softmax, log-softmax and attention's scaled causal softmax, with backward |
//! | `loss` | cross-entropy per row and its gradient |
//! | `embedding` | the embedding gradient (rows added at their ids) |
//! | `attention` | tiled attention with an online softmax, forward and backward |
//! | `rotary` | rotary position embedding in one pass over head views |
//! | `matmul` | products of primitives: storage and batches read, handed to `gemm` |
//! | `qlinear` | products with quantized weights, handed to `gemm::int8` |
//! | `optim` | the AdamW update with moments in place |

pub(crate) mod isa;
pub(crate) mod par;
pub(crate) mod probe;
pub(crate) mod shared;
pub(crate) mod simd;
pub(crate) mod spin;
pub(crate) mod storage;

pub(crate) mod accumulate;
pub(crate) mod activation;
pub(crate) mod amx;
pub(crate) mod attention;
pub(crate) mod bf16;
pub(crate) mod embedding;
pub(crate) mod gemm;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod optim;
pub(crate) mod qlinear;
pub(crate) mod rotary;
pub(crate) mod softmax;
