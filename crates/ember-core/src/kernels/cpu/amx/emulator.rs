//! A scalar AMX tile machine: the tile configuration, `tilezero`, `tileloadd`, `tilestored`,
//! `tdpbf16ps`, `tdpbusd` and `tdpbssd` with the semantics of the Intel SDM's pseudo-code, on
//! memory given as byte slices (so every row a kernel would read or write is bounds-checked).
//!
//! The micro-kernels of `amx` run either on the real tiles (`asm!`) or on this, with the same
//! tile shapes and the same order of instructions; `EMBER_SIMD=amx-emulated` picks it, so the
//! packing, tiling and edges of the AMX products run in tests on every machine.

/// Rows of a tile register.
pub(crate) const ROWS: usize = 16;
/// Bytes per row of a tile register.
pub(crate) const ROW_BYTES: usize = 64;

/// One tile's configured shape: rows and bytes per row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TileShape {
    pub(crate) rows: u8,
    pub(crate) colsb: u16,
}

/// The 64-byte block `ldtilecfg` reads: palette 1 at byte 0, each tile's bytes per row as a
/// little-endian `u16` at `16 + 2t`, its rows at `48 + t`.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileConfig {
    pub(crate) bytes: [u8; 64],
}

impl TileConfig {
    /// Palette 1 with `shapes[t]` for tile `t` (the rest unused).
    pub(crate) const fn new(shapes: [TileShape; 8]) -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        let mut t = 0;
        while t < 8 {
            let [lo, hi] = shapes[t].colsb.to_le_bytes();
            bytes[16 + 2 * t] = lo;
            bytes[17 + 2 * t] = hi;
            bytes[48 + t] = shapes[t].rows;
            t += 1;
        }
        TileConfig { bytes }
    }

    /// Tile `t`'s shape.
    pub(crate) fn shape(&self, t: usize) -> TileShape {
        TileShape {
            rows: self.bytes[48 + t],
            colsb: u16::from_le_bytes([self.bytes[16 + 2 * t], self.bytes[17 + 2 * t]]),
        }
    }
}

/// Eight tile registers and their configuration.
pub(crate) struct Emulator {
    shapes: [TileShape; 8],
    tmm: [[u8; ROWS * ROW_BYTES]; 8],
}

/// A bf16 as the f32 it stands for, denormals as zero (`tdpbf16ps` treats input denormals so).
fn bf16_daz(bits: u16) -> f32 {
    let x = f32::from_bits((bits as u32) << 16);
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// `x` with a denormal flushed to zero (`tdpbf16ps`'s outputs).
fn ftz(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

impl Emulator {
    /// `ldtilecfg`: checks the configuration as the CPU does (palette 1, at most 16 rows of 64
    /// bytes, whole dwords) and zeroes every tile. A bad one is a bug of the caller: the CPU
    /// would fault, this panics.
    pub(crate) fn ldtilecfg(cfg: &TileConfig) -> Box<Self> {
        assert_eq!(cfg.bytes[0], 1, "tile configuration: palette 1 only");
        let mut shapes = [TileShape::default(); 8];
        for (t, s) in shapes.iter_mut().enumerate() {
            *s = cfg.shape(t);
            assert!(
                s.rows as usize <= ROWS && s.colsb as usize <= ROW_BYTES && s.colsb % 4 == 0,
                "tile {t}: {s:?} exceeds a tile register"
            );
        }
        Box::new(Emulator {
            shapes,
            tmm: [[0; ROWS * ROW_BYTES]; 8],
        })
    }

    fn configured(&self, t: usize) -> (usize, usize) {
        let s = self.shapes[t];
        assert!(s.rows > 0 && s.colsb > 0, "tile {t} is not configured");
        (s.rows as usize, s.colsb as usize)
    }

    /// `tilezero`.
    pub(crate) fn tilezero(&mut self, t: usize) {
        self.tmm[t] = [0; ROWS * ROW_BYTES];
    }

    /// `tileloadd`: row `r` from `mem[base + r·stride..]`, `colsb` bytes; the rest of the
    /// register zeroed.
    pub(crate) fn tileloadd(&mut self, t: usize, mem: &[u8], base: usize, stride: usize) {
        let (rows, colsb) = self.configured(t);
        self.tilezero(t);
        for r in 0..rows {
            let src = &mem[base + r * stride..][..colsb];
            self.tmm[t][r * ROW_BYTES..][..colsb].copy_from_slice(src);
        }
    }

    /// `tilestored`: row `r` to `mem[base + r·stride..]`, `colsb` bytes.
    pub(crate) fn tilestored(&self, t: usize, mem: &mut [u8], base: usize, stride: usize) {
        let (rows, colsb) = self.configured(t);
        for r in 0..rows {
            mem[base + r * stride..][..colsb]
                .copy_from_slice(&self.tmm[t][r * ROW_BYTES..][..colsb]);
        }
    }

    /// The shapes `tdp*` requires: `c` of `a`'s rows, `a`'s dwords per row = `b`'s rows, `c`
    /// and `b` equally wide. Returns `(rows of c, dwords per row of a, dwords per row of c)`.
    fn product_shapes(&self, c: usize, a: usize, b: usize) -> (usize, usize, usize) {
        let ((cr, cc), (ar, ac), (br, bc)) =
            (self.configured(c), self.configured(a), self.configured(b));
        assert!(
            cr == ar && ac / 4 == br && cc == bc,
            "tile product shapes: c {cr}x{cc}, a {ar}x{ac}, b {br}x{bc} (bytes)"
        );
        (cr, ac / 4, cc / 4)
    }

    fn word<const N: usize>(&self, t: usize, r: usize, at: usize) -> [u8; N] {
        self.tmm[t][r * ROW_BYTES + at..][..N].try_into().unwrap()
    }

    /// `tdpbf16ps c, a, b`: per row `m` of `c`, two f32 sums per column `n` (the even and the
    /// odd element of each pair, over every pair `k`, each step a fused multiply-add), added
    /// together and then to `c`; inputs' denormals read as zero, outputs' flushed.
    pub(crate) fn tdpbf16ps(&mut self, c: usize, a: usize, b: usize) {
        let (rows, kp, cols) = self.product_shapes(c, a, b);
        for m in 0..rows {
            let mut even = [0f32; ROW_BYTES / 4];
            let mut odd = [0f32; ROW_BYTES / 4];
            for k in 0..kp {
                let [a0, a1] =
                    [0, 2].map(|h| bf16_daz(u16::from_le_bytes(self.word(a, m, 4 * k + h))));
                for n in 0..cols {
                    let [b0, b1] =
                        [0, 2].map(|h| bf16_daz(u16::from_le_bytes(self.word(b, k, 4 * n + h))));
                    even[n] = ftz(a0.mul_add(b0, even[n]));
                    odd[n] = ftz(a1.mul_add(b1, odd[n]));
                }
            }
            for n in 0..cols {
                let old = f32::from_le_bytes(self.word(c, m, 4 * n));
                let new = ftz(old + ftz(even[n] + odd[n]));
                self.tmm[c][m * ROW_BYTES + 4 * n..][..4].copy_from_slice(&new.to_le_bytes());
            }
        }
    }

    /// `tdpbssd`, `tdpbsud`, `tdpbusd`, `tdpbuud c, a, b` (`a` and `b` bytes signed or not, as
    /// named): per row `m`, column `n`, the four byte products of each dword pair `k` added to
    /// `c`'s i32, wrapping.
    pub(crate) fn tdpb_d(&mut self, c: usize, a: usize, b: usize, [a_signed, b_signed]: [bool; 2]) {
        let (rows, kd, cols) = self.product_shapes(c, a, b);
        for m in 0..rows {
            for n in 0..cols {
                let mut acc = i32::from_le_bytes(self.word(c, m, 4 * n));
                for k in 0..kd {
                    let (x, y) = (self.word::<4>(a, m, 4 * k), self.word::<4>(b, k, 4 * n));
                    for (&xa, &yb) in x.iter().zip(&y) {
                        let xa = if a_signed { xa as i8 as i32 } else { xa as i32 };
                        let yb = if b_signed { yb as i8 as i32 } else { yb as i32 };
                        acc = acc.wrapping_add(xa * yb);
                    }
                }
                self.tmm[c][m * ROW_BYTES + 4 * n..][..4].copy_from_slice(&acc.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: TileShape = TileShape {
        rows: 16,
        colsb: 64,
    };

    #[test]
    fn loads_store_rows_and_zero_the_rest() {
        let mut shapes = [FULL; 8];
        shapes[1] = TileShape { rows: 3, colsb: 8 };
        let mut e = Emulator::ldtilecfg(&TileConfig::new(shapes));
        let mem: Vec<u8> = (0..200).map(|i| i as u8).collect();
        e.tileloadd(1, &mem, 5, 20);
        let mut out = vec![0xffu8; 64];
        e.tilestored(1, &mut out, 0, 10);
        for r in 0..3 {
            assert_eq!(&out[r * 10..r * 10 + 8], &mem[5 + r * 20..5 + r * 20 + 8]);
            assert_eq!(&out[r * 10 + 8..r * 10 + 10], &[0xff, 0xff]);
        }
        assert!(e.tmm[1][3 * ROW_BYTES..].iter().all(|&b| b == 0));
        assert!(e.tmm[1][8..ROW_BYTES].iter().all(|&b| b == 0));
    }

    /// One instruction on a 2×(2 pairs)×3 product: each output the even and odd sums added.
    #[test]
    fn bf16_products_follow_the_pseudo_code() {
        let mut shapes = [TileShape::default(); 8];
        shapes[0] = TileShape { rows: 2, colsb: 12 }; // c: 2 × 3 f32
        shapes[1] = TileShape { rows: 2, colsb: 8 }; // a: 2 × 2 pairs
        shapes[2] = TileShape { rows: 2, colsb: 12 }; // b: 2 pairs × 3 columns
        let mut e = Emulator::ldtilecfg(&TileConfig::new(shapes));
        let bf = |x: f32| (x.to_bits() >> 16) as u16;
        let a: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 2.0, -3.0]; // row m: k0 pair, k1 pair
        let b: Vec<f32> = (0..12).map(|i| i as f32 - 5.0).collect(); // row k: 3 pairs
        let bytes =
            |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|&x| bf(x).to_le_bytes()).collect() };
        e.tileloadd(1, &bytes(&a), 0, 8);
        e.tileloadd(2, &bytes(&b), 0, 12);
        let c0: Vec<u8> = [10f32, 20., 30., 40., 50., 60.]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        e.tileloadd(0, &c0, 0, 12);
        e.tdpbf16ps(0, 1, 2);
        let mut out = vec![0u8; 24];
        e.tilestored(0, &mut out, 0, 12);
        for m in 0..2 {
            for n in 0..3 {
                let ev: f32 = (0..2).map(|k| a[m * 4 + 2 * k] * b[k * 6 + 2 * n]).sum();
                let od: f32 = (0..2)
                    .map(|k| a[m * 4 + 2 * k + 1] * b[k * 6 + 2 * n + 1])
                    .sum();
                let want = (10 * (m * 3 + n + 1)) as f32 + (ev + od);
                let got = f32::from_le_bytes(out[(m * 3 + n) * 4..][..4].try_into().unwrap());
                assert_eq!(got, want, "({m}, {n})");
            }
        }
    }

    #[test]
    fn int8_products_sum_exactly_and_wrap() {
        let mut shapes = [TileShape::default(); 8];
        shapes[0] = TileShape { rows: 1, colsb: 4 };
        shapes[1] = TileShape { rows: 1, colsb: 8 };
        shapes[2] = TileShape { rows: 2, colsb: 4 };
        let mut e = Emulator::ldtilecfg(&TileConfig::new(shapes));
        let a = [255u8, 1, 2, 3, 128, 0, 0, 7];
        let b = [0x80u8, 1, 0xff, 2, 1, 1, 1, 1]; // -128, 1, -1, 2 | 1, 1, 1, 1
        e.tileloadd(1, &a, 0, 8);
        e.tileloadd(2, &b, 0, 4);
        e.tdpb_d(0, 1, 2, [false, true]);
        let mut out = [0u8; 4];
        e.tilestored(0, &mut out, 0, 4);
        let unsigned = 255 * -128 + 1 - 2 + 6 + 128 + 7;
        assert_eq!(i32::from_le_bytes(out), unsigned);
        e.tilezero(0);
        e.tdpb_d(0, 1, 2, [true, true]);
        e.tilestored(0, &mut out, 0, 4);
        let signed = -1 * -128 + 1 - 2 + 6 - 128 + 7;
        assert_eq!(i32::from_le_bytes(out), signed);
        e.tilezero(0);
        e.tdpb_d(0, 1, 2, [true, false]);
        e.tilestored(0, &mut out, 0, 4);
        let signed_unsigned = -128 + 1 + 2 * 255 + 3 * 2 - 128 + 7;
        assert_eq!(i32::from_le_bytes(out), signed_unsigned);
    }
}
