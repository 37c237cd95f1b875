//! kiln's own seeded random number generator.
//!
//! candle's CPU RNG cannot be seeded, so every random number kiln draws (initialisation,
//! dropout masks, shuffles) comes from here. Like `torch.manual_seed`, there is one default
//! generator, but it is per thread so that tests and DataParallel replicas never race; its
//! whole state can be saved into a checkpoint and restored for a bit-exact resume.
//!
//! ```
//! kiln::rng::manual_seed(7);
//! let a = kiln::rng::with(|g| g.uniform(0.0, 1.0));
//! kiln::rng::manual_seed(7);
//! assert_eq!(a, kiln::rng::with(|g| g.uniform(0.0, 1.0)));
//! ```

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::cell::RefCell;

/// A seedable generator (ChaCha8) with serialisable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generator {
    rng: ChaCha8Rng,
}

/// The complete state of a [`Generator`]: enough to continue its stream exactly.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratorState {
    /// The 256-bit key, hex encoded.
    pub seed_hex: String,
    /// The stream number.
    pub stream: u64,
    /// Position in the stream, in 32-bit words.
    pub word_pos: u128,
}

impl Generator {
    /// A generator seeded from a `u64`, as `torch.manual_seed` takes.
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A generator for a derived stream, e.g. `(seed, epoch)` for shuffling.
    pub fn derived(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Generator { rng }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform `f64` in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform `f64` in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A uniform integer in `[0, n)` without modulo bias; `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.rng.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }

    /// `n` samples of `uniform(lo, hi)` as `f32`.
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi) as f32).collect()
    }

    /// The generator's full state.
    pub fn state(&self) -> GeneratorState {
        let seed = self.rng.get_seed();
        GeneratorState {
            seed_hex: seed.iter().map(|b| format!("{b:02x}")).collect(),
            stream: self.rng.get_stream(),
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// Restores a generator from [`Generator::state`].
    pub fn from_state(state: &GeneratorState) -> crate::Result<Self> {
        let bad = || crate::Error::invalid("rng state", &state.seed_hex, "64 hex digits");
        if state.seed_hex.len() != 64 {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            let byte = state.seed_hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *b = u8::from_str_radix(byte, 16).map_err(|_| bad())?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        Ok(Generator { rng })
    }
}

thread_local! {
    static DEFAULT: RefCell<Generator> = RefCell::new(Generator::new(0));
}

/// Seeds this thread's default generator (like `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    DEFAULT.with(|g| *g.borrow_mut() = Generator::new(seed));
}

/// Runs `f` with this thread's default generator.
pub fn with<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    DEFAULT.with(|g| f(&mut g.borrow_mut()))
}

/// The state of this thread's default generator (for checkpoints).
pub fn get_state() -> GeneratorState {
    DEFAULT.with(|g| g.borrow().state())
}

/// Restores this thread's default generator from a saved state.
pub fn set_state(state: &GeneratorState) -> crate::Result<()> {
    let g = Generator::from_state(state)?;
    DEFAULT.with(|d| *d.borrow_mut() = g);
    Ok(())
}

/// Replaces this thread's default generator, returning the previous one.
pub fn replace(generator: Generator) -> Generator {
    DEFAULT.with(|d| std::mem::replace(&mut *d.borrow_mut(), generator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut g = Generator::new(42);
        for _ in 0..13 {
            g.next_u64();
        }
        let s = g.state();
        let a: Vec<u64> = (0..5).map(|_| g.next_u64()).collect();
        let mut h = Generator::from_state(&s).unwrap();
        let b: Vec<u64> = (0..5).map(|_| h.next_u64()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn permutation_is_a_permutation_and_depends_on_stream() {
        let p = Generator::derived(1, 0).permutation(100);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(p, Generator::derived(1, 1).permutation(100));
        assert_eq!(p, Generator::derived(1, 0).permutation(100));
    }

    #[test]
    fn bad_state_is_an_error() {
        let s = GeneratorState {
            seed_hex: "zz".into(),
            stream: 0,
            word_pos: 0,
        };
        assert!(Generator::from_state(&s).is_err());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut g = Generator::new(3);
        let n = 20000;
        let xs: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
