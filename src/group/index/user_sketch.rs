//! Distinct users past the exact-count limit: a HyperLogLog sketch of 2^14 registers (standard
//! error 1.04 / √16384 = 0.81 %), stored one row per register so two writers (two nodes, or two
//! days merged into a window) combine by taking each register's maximum, in any order. The
//! cardinality comes from the register histogram with Ertl's improved estimator ("New
//! cardinality estimation algorithms for HyperLogLog sketches", 2017), which needs no bias
//! tables and stays unbiased from a few users to billions.

use sha2::{Digest, Sha256};

/// Users counted exactly per set before its sketch takes over (the sketch's standard error is
/// 0.81 %; below this, counts are exact).
pub const EXACT_USERS: i64 = 10_000;

/// The environment and day of a release's all-time user set (a day set has a real
/// environment and a day ≥ 0).
pub const ALL_TIME: (&str, i64) = ("", -1);

/// Index bits: 2^14 registers.
pub const PRECISION: u32 = 14;
/// Registers in a sketch.
pub const REGISTERS: usize = 1 << PRECISION;
/// Hash bits left for the rank.
const RANK_BITS: u32 = 64 - PRECISION;
/// Ranks run 1..=RANK_BITS + 1 (0: an empty register); the histogram counts each.
pub const HISTOGRAM_LEN: usize = RANK_BITS as usize + 2;

/// Where a user falls: its register and the rank it offers it.
pub fn register_of(user: &str) -> (usize, u8) {
    let digest = Sha256::digest(user.as_bytes());
    let hash = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let register = (hash >> RANK_BITS) as usize;
    let rest = hash << PRECISION;
    let rank = rest.leading_zeros().min(RANK_BITS) + 1;
    (register, rank as u8)
}

/// How many registers hold each rank (index 0: the empty ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram(pub [i64; HISTOGRAM_LEN]);

impl Default for Histogram {
    fn default() -> Self {
        let mut counts = [0; HISTOGRAM_LEN];
        counts[0] = REGISTERS as i64;
        Histogram(counts)
    }
}

impl Histogram {
    /// The histogram of a sketch's registers (absent ones are empty).
    pub fn of(ranks: impl IntoIterator<Item = u8>) -> Histogram {
        let mut h = Histogram::default();
        for rank in ranks {
            h.raise(0, rank);
        }
        h
    }

    /// A register went from rank `from` to rank `to`.
    pub fn raise(&mut self, from: u8, to: u8) {
        let (from, to) = (usize::from(from), usize::from(to));
        if from < HISTOGRAM_LEN && to < HISTOGRAM_LEN && from != to {
            self.0[from] -= 1;
            self.0[to] += 1;
        }
    }

    /// As stored: the counts, comma-separated.
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(i64::to_string).collect();
        parts.join(",")
    }

    /// Read back; `None` for anything that is not a histogram of this sketch's shape.
    pub fn from_text(text: &str) -> Option<Histogram> {
        let mut counts = [0; HISTOGRAM_LEN];
        let mut parts = text.split(',');
        for slot in counts.iter_mut() {
            *slot = parts.next()?.trim().parse().ok()?;
        }
        let total: i64 = counts.iter().sum();
        (parts.next().is_none() && total == REGISTERS as i64).then_some(Histogram(counts))
    }

    /// The estimated number of distinct users.
    pub fn estimate(&self) -> i64 {
        let m = REGISTERS as f64;
        let c = |k: usize| self.0[k] as f64;
        let q = RANK_BITS as usize;
        let mut z = m * tau((m - c(q + 1)) / m);
        for k in (1..=q).rev() {
            z = 0.5 * (z + c(k));
        }
        z += m * sigma(c(0) / m);
        let alpha = 1.0 / (2.0 * std::f64::consts::LN_2);
        (alpha * m * m / z).round() as i64
    }
}

/// σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1), for the empty registers.
fn sigma(x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut x, mut y, mut z) = (x, 1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^-k))² 2^-k) / 3, for the saturated registers.
fn tau(x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut x, mut y, mut z) = (x, 1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sketch of `n` distinct users, as register ranks.
    fn sketch(users: impl Iterator<Item = String>) -> Vec<u8> {
        let mut registers = vec![0u8; REGISTERS];
        for user in users {
            let (i, rank) = register_of(&user);
            registers[i] = registers[i].max(rank);
        }
        registers
    }

    #[test]
    fn estimates_stay_within_three_standard_errors() {
        for n in [1_000usize, 20_000, 150_000] {
            let registers = sketch((0..n).map(|i| format!("device-{i}")));
            let estimate = Histogram::of(registers).estimate() as f64;
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(
                error < 0.0243,
                "{n} users estimated as {estimate} ({error:.4})"
            );
        }
    }

    #[test]
    fn merging_is_taking_the_maximum_in_any_order() {
        let a = sketch((0..30_000).map(|i| format!("u{i}")));
        let b = sketch((20_000..60_000).map(|i| format!("u{i}")));
        let merged: Vec<u8> = a.iter().zip(&b).map(|(x, y)| *x.max(y)).collect();
        let whole = sketch((0..60_000).map(|i| format!("u{i}")));
        assert_eq!(merged, whole);
        let estimate = Histogram::of(merged).estimate() as f64;
        assert!(
            (estimate - 60_000.0).abs() / 60_000.0 < 0.0243,
            "{estimate}"
        );
    }

    #[test]
    fn histograms_round_trip_and_refuse_other_shapes() {
        let mut h = Histogram::default();
        h.raise(0, 3);
        h.raise(3, 7);
        assert_eq!(Histogram::from_text(&h.to_text()), Some(h.clone()));
        assert_eq!(h.0[7], 1);
        assert_eq!(Histogram::default().estimate(), 0);
        assert_eq!(Histogram::from_text("1,2,3"), None);
        assert_eq!(Histogram::from_text(&format!("{},x", h.to_text())), None);
    }
}
