//! A group's rate per release on its page: crashes per 1,000 sessions and the share of the
//! release's users it hit, next to the raw counts ("hits 0.4% of sessions in 2.1.0").

use crate::app::App;

/// One release's rate.
pub struct RateRow {
    pub release: String,
    pub crashes: i64,
    pub sessions: i64,
    /// Crashes per 1,000 sessions, or empty without sessions.
    pub per_1000: String,
    /// The share of the release's sessions it hit, in words.
    pub words: String,
    pub users_share: String,
}

/// The group's rates, newest release first (none when no release has sessions).
pub async fn rate_rows(state: &App, group_id: i64) -> Vec<RateRow> {
    let rates = match state.health.group_rates(group_id).await {
        Ok(rates) => rates,
        Err(e) => {
            tracing::warn!(group = group_id, error = %e, "could not read the group's rates");
            return Vec::new();
        }
    };
    rates
        .into_iter()
        .filter(|r| r.sessions > 0)
        .map(|r| RateRow {
            words: format!(
                "hits {:.3}% of sessions in {}",
                r.per_1000_sessions.unwrap_or(0.0) / 10.0,
                r.release
            ),
            per_1000: r
                .per_1000_sessions
                .map(|p| format!("{p:.3}"))
                .unwrap_or_default(),
            users_share: r
                .users_share
                .map(|p| format!("{p:.2} %"))
                .unwrap_or_default(),
            release: r.release,
            crashes: r.crashes,
            sessions: r.sessions,
        })
        .collect()
}
