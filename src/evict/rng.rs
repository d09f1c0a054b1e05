//! The reference's two random generators, reproduced bit for bit:
//! - Python's `random.Random` (MT19937 seeded by `init_by_array`): the simulator draws its questions
//!   and context sizes from it;
//! - numpy's `default_rng` (SeedSequence + PCG64) and `Generator.choice(n, b, replace=False)`: the
//!   Random policy draws its tokens from it.

const N: usize = 624;
const M: usize = 397;

/// A Mersenne Twister that yields the same stream as Python's `random.Random(seed)`.
#[derive(Clone)]
pub struct PyRandom {
    state: [u32; N],
    index: usize,
}

impl PyRandom {
    /// Seeds like `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        // Python splits the seed into 32-bit words, least significant first; 0 is one word.
        let key: Vec<u32> =
            if seed >> 32 == 0 { vec![seed as u32] } else { vec![seed as u32, (seed >> 32) as u32] };
        let mut rng = Self::init_genrand(19_650_218);
        rng.init_by_array(&key);
        rng
    }

    fn init_genrand(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            state[i] =
                1_812_433_253u32.wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { state, index: N }
    }

    fn init_by_array(&mut self, key: &[u32]) {
        let mt = &mut self.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_664_525)).wrapping_add(key[j]).wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = (mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        for k in 0..N {
            let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// The next 32 random bits (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.random()`: a float in [0, 1) with 53 random bits.
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `random._randbelow(n)`: rejection sampling on `n.bit_length()` bits.
    ///
    /// # Panics
    /// If `n` is 0 or not below 2^32.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0 && n <= u32::MAX as usize, "below() needs 0 < n < 2^32");
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = (self.next_u32() >> (32 - k)) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `random.randint(lo, hi)`, both ends included.
    pub fn randint(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// `random.choice(items)`.
    ///
    /// # Panics
    /// If `items` is empty.
    pub fn choice<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `random.uniform(a, b)`.
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.random()
    }

    /// A normal draw by the Box-Muller transform. Python's `gauss` caches its second draw and numpy
    /// uses a ziggurat, so this stream matches neither; it only feeds synthetic training noise. Its
    /// `log` and `cos` are the `libm` crate's, not the platform's, so that training gives the same
    /// bytes everywhere.
    pub fn normal(&mut self, mean: f64, std: f64) -> f64 {
        let u1 = 1.0 - self.random();
        let u2 = self.random();
        mean + std * (-2.0 * libm::log(u1)).sqrt() * libm::cos(std::f64::consts::TAU * u2)
    }
}

/// numpy's `np.random.default_rng(seed)` for a seed below 2^32: PCG64 (XSL-RR 128/64) seeded
/// through `SeedSequence`, with numpy's buffering of 32-bit draws.
pub struct NumpyRng {
    state: u128,
    inc: u128,
    /// The high half of the last 64-bit draw, returned by the next 32-bit draw.
    spare_u32: Option<u32>,
}

/// PCG's default 128-bit LCG multiplier.
const PCG_MULT: u128 = (2_549_297_995_355_413_924 << 64) + 4_865_540_595_714_422_341;

impl NumpyRng {
    /// `np.random.default_rng(seed)`.
    pub fn new(seed: u32) -> Self {
        let words = seed_sequence_state(seed);
        let join = |hi: u64, lo: u64| (u128::from(hi) << 64) | u128::from(lo);
        // numpy passes the state words as (seed[0] high, seed[1] low) and (inc[0] high, inc[1] low).
        let init_state = join(words[0], words[1]);
        let init_seq = join(words[2], words[3]);
        let mut rng = Self { state: 0, inc: (init_seq << 1) | 1, spare_u32: None };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next 64-bit output (`random_raw`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let (hi, lo) = ((self.state >> 64) as u64, self.state as u64);
        (hi ^ lo).rotate_right((hi >> 58) as u32)
    }

    /// numpy's `next_uint32`: the low half of a 64-bit draw, then its high half.
    fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.spare_u32.take() {
            return v;
        }
        let v = self.next_u64();
        self.spare_u32 = Some((v >> 32) as u32);
        v as u32
    }

    /// `random_bounded_uint64(0, max)` for `max < 2^32`: uniform in `[0, max]` by Lemire's method.
    fn bounded(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        if max == u32::MAX {
            return self.next_u32();
        }
        let range = u64::from(max) + 1;
        let mut m = u64::from(self.next_u32()) * range;
        if (m as u32 as u64) < range {
            let threshold = (u64::from(u32::MAX) - u64::from(max)) % range;
            while (m as u32 as u64) < threshold {
                m = u64::from(self.next_u32()) * range;
            }
        }
        (m >> 32) as u32
    }

    /// The set `Generator.choice(n, size=b, replace=False)` draws (numpy then shuffles it, which
    /// changes the order only), in ascending order.
    ///
    /// # Panics
    /// If `n` is not below 2^32.
    pub fn choice_set(&mut self, n: usize, b: usize) -> Vec<usize> {
        assert!(u32::try_from(n).is_ok(), "choice_set needs n < 2^32");
        let b = b.min(n);
        if n > 10_000 && b > n / 50 {
            // numpy's tail shuffle: a partial Fisher-Yates over the last `b` slots.
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (n.saturating_sub(b).max(1)..n).rev() {
                let j = self.bounded(i as u32) as usize;
                idx.swap(i, j);
            }
            let mut kept = idx.split_off(n - b);
            kept.sort_unstable();
            return kept;
        }
        // Floyd's algorithm.
        let mut kept = std::collections::BTreeSet::new();
        for j in n - b..n {
            let v = self.bounded(j as u32) as usize;
            if !kept.insert(v) {
                kept.insert(j);
            }
        }
        kept.into_iter().collect()
    }
}

/// `np.random.SeedSequence(seed).generate_state(4, np.uint64)`.
fn seed_sequence_state(seed: u32) -> [u64; 4] {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_MULT_L: u32 = 0xca01_f9dd;
    const MIX_MULT_R: u32 = 0x4973_f715;
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    // The entropy is the one word `seed`; the pool has four words.
    let mut pool = [0u32; 4];
    for (i, slot) in pool.iter_mut().enumerate() {
        *slot = hashmix(if i == 0 { seed } else { 0 });
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    let mut hash_b = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % 4] ^ hash_b;
        hash_b = hash_b.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_b);
        *w = v ^ (v >> 16);
    }
    std::array::from_fn(|i| u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32))
}

#[cfg(test)]
mod tests {
    use super::{NumpyRng, PyRandom};

    #[test]
    fn matches_numpy_default_rng() {
        // Expected values from numpy 2.4: SeedSequence(0).generate_state(4, np.uint64),
        // PCG64(0).random_raw(3), sorted(default_rng(s).choice(n, size=b, replace=False)).
        assert_eq!(
            super::seed_sequence_state(0),
            [0xdb2cd7e7b0f478be, 0xabf4641a2c71ba49, 0x20c6ed6d9d7b8d41, 0x2c4099de223c39d4]
        );
        let mut r = NumpyRng::new(0);
        let raw: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(raw, [11749869230777074271, 4976686463289251617, 755828109848996024]);
        assert_eq!(NumpyRng::new(0).choice_set(100, 10), [1, 3, 7, 17, 25, 29, 47, 58, 77, 81]);
        let tail = NumpyRng::new(0).choice_set(20_000, 500);
        assert_eq!(tail[..10], [54, 106, 125, 158, 165, 196, 291, 316, 324, 330]);
        assert_eq!(NumpyRng::new(7).choice_set(5, 5), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn matches_python_random() {
        // Expected values from CPython 3.11: random.Random(0).getrandbits(32), .random(),
        // [random.Random(s).choice(range(3)) for s in range(8)], random.Random(42).randint(0, 400).
        let mut r = PyRandom::new(0);
        assert_eq!(r.next_u32(), 3_626_764_237);
        assert_eq!(r.random(), 0.3852453064766108);
        let picks: Vec<usize> = (0..8).map(|s| PyRandom::new(s).below(3)).collect();
        assert_eq!(picks, [1, 0, 0, 0, 0, 2, 2, 1]);
        assert_eq!(PyRandom::new(42).randint(0, 400), 327);
    }
}
