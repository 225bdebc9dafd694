//! Seeded random numbers, generated on the host so results are bit-identical on every device.

use std::sync::Mutex;

/// A seeded random generator (xoshiro256++ seeded through SplitMix64).
///
/// Pass one to the `*_with` creation functions for a private stream; the plain functions
/// (`Tensor::rand`, `randn`, `bernoulli`) draw from a global generator set by [`manual_seed`].
///
/// ```
/// use ember_core::{Generator, Tensor, DType, Device};
/// let a = Tensor::randn_with(&mut Generator::new(7), &[3], DType::F32, Device::Cpu)?;
/// let b = Tensor::randn_with(&mut Generator::new(7), &[3], DType::F32, Device::Cpu)?;
/// assert_eq!(a.to_vec::<f32>()?, b.to_vec::<f32>()?);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    s: [u64; 4],
}

/// The global generator's seed at start-up (fixed, so runs are reproducible by default).
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

static GLOBAL: Mutex<Generator> = Mutex::new(Generator::from_state(seed_state(DEFAULT_SEED)));

const fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const fn seed_state(seed: u64) -> [u64; 4] {
    let mut x = seed;
    [
        splitmix(&mut x),
        splitmix(&mut x),
        splitmix(&mut x),
        splitmix(&mut x),
    ]
}

impl Generator {
    /// A generator from a seed.
    pub const fn new(seed: u64) -> Generator {
        Generator::from_state(seed_state(seed))
    }

    const fn from_state(s: [u64; 4]) -> Generator {
        Generator { s }
    }

    /// The full internal state, to save and restore (for bit-exact resume).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing from a saved state.
    pub fn from_saved_state(state: [u64; 4]) -> Generator {
        Generator { s: state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform f64 in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the log is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Seeds the global generator, as `torch.manual_seed`.
pub fn manual_seed(seed: u64) {
    *global() = Generator::new(seed);
}

/// The global generator's state, to save with a checkpoint (bit-exact resume).
pub fn global_state() -> [u64; 4] {
    global().state()
}

/// Restores the global generator to a state from [`global_state`].
pub fn set_global_state(state: [u64; 4]) {
    *global() = Generator::from_saved_state(state);
}

/// Runs `f` with the global generator locked.
pub(crate) fn with_global<T>(f: impl FnOnce(&mut Generator) -> T) -> T {
    f(&mut global())
}

fn global() -> std::sync::MutexGuard<'static, Generator> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut a = Generator::new(1);
        let mut b = Generator::new(1);
        let mut c = Generator::new(2);
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn moments_are_plausible() {
        let mut g = Generator::new(3);
        let n = 20_000;
        let u: Vec<f64> = (0..n).map(|_| g.uniform()).collect();
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "uniform mean {mean}");
        let z: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "normal {m} {v}");
    }
}
