//! When an hour of a group's crashes is a spike: many more than the day before it. One
//! definition for the evidence's timeline (the hour it spiked, the groups that spiked with it)
//! and for the correlations job (a spiking group's correlations are computed again).

/// An hour is a spike when it has at least this many crashes…
pub const SPIKE_EVENTS: i64 = 10;
/// …(another group's, spiking beside one that does: this many)…
pub const SPIKE_EVENTS_OTHERS: i64 = 5;
/// …and this many times the hourly rate of the day before.
pub const SPIKE_FACTOR: f64 = 3.0;

/// Whether `events` in an hour after `day_before` crashes in the 24 hours before is a spike
/// (with at least `least` crashes in the hour).
pub fn is_spike(events: i64, day_before: i64, least: i64) -> bool {
    events >= least && events as f64 >= SPIKE_FACTOR * day_before as f64 / 24.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_is_a_spike_past_three_times_the_day_befores_rate_and_ten_crashes() {
        assert!(is_spike(10, 0, SPIKE_EVENTS));
        assert!(!is_spike(9, 0, SPIKE_EVENTS), "too few crashes");
        assert!(is_spike(30, 240, SPIKE_EVENTS), "3 x 10 an hour");
        assert!(!is_spike(29, 240, SPIKE_EVENTS), "under 3 x 10 an hour");
    }
}
