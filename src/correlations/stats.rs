//! The statistics Mozilla's crash correlations use (marco-c/crashcorrelations,
//! `find_deviations`), computed as SciPy computes them: the chi-square test of a 2×2
//! contingency table with Yates' continuity correction (`scipy.stats.chi2_contingency`), its
//! effect size φ, and Fisher's exact test, two-sided (`scipy.stats.fisher_exact`).

use statrs::distribution::{ChiSquared, ContinuousCDF};
use statrs::function::factorial::ln_binomial;

/// The chi-square test of `[[a, b], [c, d]]`: (χ², p). A table with an empty row or column
/// says nothing: (0, 1).
pub fn chi2_contingency(table: [[f64; 2]; 2]) -> (f64, f64) {
    let rows = [table[0][0] + table[0][1], table[1][0] + table[1][1]];
    let columns = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
    let total = rows[0] + rows[1];
    if rows.contains(&0.0) || columns.contains(&0.0) {
        return (0.0, 1.0);
    }
    let mut chi2 = 0.0;
    for (i, row) in table.iter().enumerate() {
        for (j, &observed) in row.iter().enumerate() {
            let expected = rows[i] * columns[j] / total;
            // Yates: every cell moved half a count towards what was expected (never past it).
            let moved = (expected - observed).abs().min(0.5);
            let corrected = observed + moved * (expected - observed).signum();
            chi2 += (corrected - expected).powi(2) / expected;
        }
    }
    let p = ChiSquared::new(1.0).map_or(1.0, |d| d.sf(chi2));
    (chi2, p)
}

/// Fisher's exact test of `[[a, b], [c, d]]`, two-sided: the probability, with the margins
/// fixed, of a table at most as likely as this one.
pub fn fisher_exact(table: [[u64; 2]; 2]) -> f64 {
    let [[a, b], [c, d]] = table;
    let (row1, column1, total) = (a + b, a + c, a + b + c + d);
    if total == 0 {
        return 1.0;
    }
    // P(x) of the top-left cell being x: hypergeometric.
    let ln_p = |x: u64| -> f64 {
        ln_binomial(column1, x) + ln_binomial(total - column1, row1 - x) - ln_binomial(total, row1)
    };
    let low = row1.saturating_sub(total - column1);
    let high = row1.min(column1);
    let observed = ln_p(a);
    // SciPy's relative tolerance for "as likely".
    let limit = observed + (1.0 + 1e-7f64).ln();
    (low..=high)
        .map(ln_p)
        .filter(|&l| l <= limit)
        .map(f64::exp)
        .sum::<f64>()
        .min(1.0)
}

/// φ, the effect size of a chi-square over `n` observations.
pub fn phi(chi2: f64, n: f64) -> f64 {
    if n <= 0.0 {
        0.0
    } else {
        (chi2 / n).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    /// Worked by hand: [[30, 70], [10, 190]]: totals 100 / 200, 40 / 260, N 300; expected
    /// 13.333, 86.667, 26.667, 173.333; |O − E| = 16.667, less 0.5 = 16.167;
    /// χ² = 16.167² × (1/13.333 + 1/86.667 + 1/26.667 + 1/173.333) = 33.92.
    #[test]
    fn chi_square_matches_the_hand_computed_table() {
        let (chi2, p) = chi2_contingency([[30.0, 70.0], [10.0, 190.0]]);
        let by_hand =
            16.1667f64.powi(2) * (1.0 / 13.3333 + 1.0 / 86.6667 + 1.0 / 26.6667 + 1.0 / 173.3333);
        assert!(close(chi2, by_hand, 1e-4), "{chi2} vs {by_hand}");
        // p = erfc(sqrt(χ²/2)) for one degree of freedom: 5.7e-9 here.
        assert!(p > 1e-9 && p < 1e-8, "{p}");
        assert!(close(phi(chi2, 300.0), (by_hand / 300.0).sqrt(), 1e-4));
    }

    #[test]
    fn the_correction_never_moves_a_cell_past_its_expectation() {
        // Observed equals expected: χ² is 0, p is 1.
        let (chi2, p) = chi2_contingency([[10.0, 10.0], [10.0, 10.0]]);
        assert_eq!((chi2, p), (0.0, 1.0));
        // An empty column is no test.
        assert_eq!(chi2_contingency([[0.0, 5.0], [0.0, 7.0]]), (0.0, 1.0));
    }

    /// Fisher's tea-tasting table [[3, 1], [1, 3]]: the two-sided p is 34/70 = 0.4857.
    #[test]
    fn fisher_matches_the_tea_tasting_lady() {
        assert!(close(fisher_exact([[3, 1], [1, 3]]), 34.0 / 70.0, 1e-9));
        assert!(close(fisher_exact([[4, 0], [0, 4]]), 2.0 / 70.0, 1e-9));
        assert_eq!(fisher_exact([[0, 0], [0, 0]]), 1.0);
    }
}
