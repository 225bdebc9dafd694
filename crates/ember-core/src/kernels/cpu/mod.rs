//! Ember's own CPU kernels (f32, and bf16 products): one pass over memory where the composed primitives would
//! make five to fifteen, and products that skip burn-flex's extra copies.
//!
//! Each function reads burn-flex's storage directly and returns `None` (or hands its input
//! back) when it does not apply: not on the CPU, not f32, a layout it does not take, shapes
//! that do not match. The kernel entries one level up (`kernels::*`) then run the composed
//! definition, which stays the reference on every other device and dtype. Loops are written so
//! that LLVM vectorizes them and compiled three times (AVX-512, AVX2+FMA, baseline) by
//! [`simd_kernel!`](simd::simd_kernel), the widest chosen at run time; work is split over
//! rayon's pool.
//!
//! | file | what |
//! |---|---|
//! | `storage` | burn-flex storage access, in-place writes, views, strides |
//! | `simd` | the dispatch macro, vectorizable `exp`/`erf`/`tanh`, sums, work splitting |
//! | `elementwise` | GELU (erf and tanh) and gradients, in-place accumulation |
//! | `norm` | layer norm and RMS norm, forward and backward |
//! | `softmax` | softmax, log-softmax and attention's scaled causal softmax, with backward |
//! | `loss` | cross-entropy per row and its gradient |
//! | `embedding` | the embedding gradient (rows added at their ids) |
//! | `attention` | tiled attention with an online softmax, forward and backward |
//! | `tiles` | the small dense products of tiled attention (AVX-512 FMA kernels) |
//! | `matmul` | GEMM into fresh buffers, few-row products for decoding |
//! | `bf16` | bf16 storage as raw bits, conversions to and from f32, AVX512_BF16 detection |
//! | `gemm_bf16` | bf16 products: a packed AVX512_BF16 GEMM |
//! | `pack_bf16` | packing bf16 panels for the GEMM (pairs along `k` per lane) |
//! | `gemv_bf16` | bf16 products of few rows (decoding), streaming the weight once |
//! | `qpack` | quantized weights repacked for the integer kernels; activations quantized to 8 bits |
//! | `rotary` | rotary position embedding in one pass over head views |
//! | `spin` | a spinning pool for the short parallel calls of decoding |
//! | `qdot` | quantized products: AVX512-VNNI integer dot products, and the same arithmetic portably |
//! | `optim` | the AdamW update with moments in place |

pub(crate) mod simd;

pub(crate) mod attention;
pub(crate) mod bf16;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod gemm_bf16;
pub(crate) mod gemv_bf16;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod optim;
pub(crate) mod pack_bf16;
pub(crate) mod qdot;
pub(crate) mod qpack;
pub(crate) mod rotary;
pub(crate) mod softmax;
pub(crate) mod spin;
pub(crate) mod storage;
pub(crate) mod tiles;
