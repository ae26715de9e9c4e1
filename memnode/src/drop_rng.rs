//! [`DropRng`]: a small seeded random generator (SplitMix64) for `--drop-rate` and for
//! tests that lose frames on purpose. Reproducible from its seed; not for secrets.

/// A seeded SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct DropRng {
    state: u64,
}

impl DropRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        DropRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `rate` (0 never, 1 always).
    pub fn chance(&mut self, rate: f64) -> bool {
        // 53 random bits make a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fixes_the_sequence() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut rng = DropRng::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let mut rng = DropRng::new(7);
        assert!(a.iter().all(|&x| x == rng.next_u64()));
    }

    #[test]
    fn chance_follows_the_rate() {
        let mut rng = DropRng::new(1);
        assert!(!(0..1000).any(|_| rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
        assert!((2200..2800).contains(&hits), "{hits}");
    }
}
