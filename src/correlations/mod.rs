//! Crash correlations: what is special about the crashes of a group. For every attribute of its
//! crashes (product, release, OS and its version, CPU and its vendor and family, the versions
//! of the modules on the crashing thread, the memory the fault hit, each annotation: a GPU
//! driver, a launcher version, a mod; not its fault class, which the group is made of), its
//! share in the group against its share among the project's crashes of the same window and
//! releases, kept when Mozilla's tests say the difference is real (`deviations.rs`, with the
//! statistics in `stats.rs`). Computed beside crash processing by a background job for new
//! groups, groups that grew by a quarter and groups that spiked; stored, read by the evidence.

pub mod deviations;
pub mod stats;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::group::spike::{SPIKE_EVENTS, SPIKE_FACTOR};

pub use deviations::{Deviation, Item};

/// The most crashes of the group read (the newest).
const GROUP_CRASHES: i64 = 10_000;
/// The most crashes of the reference set read (the newest).
const REFERENCE_CRASHES: i64 = 50_000;
/// The most releases of the group the reference set is drawn from.
const RELEASES: usize = 50;
/// The reference set starts this long before the group's oldest crash read (the project as it
/// was when the group appeared).
const REFERENCE_LEAD_SECS: i64 = 86_400;
/// A group is computed again once its crashes grew by this factor…
const GROWTH: f64 = 1.25;
/// …but not more often than this (seconds), unless it is small (cheap to compute again).
const MIN_AGE_SECS: i64 = 600;
/// A group of fewer crashes than this is computed again whenever it grew by a quarter.
const SMALL_GROUP: i64 = 1_000;
/// A group quiet this long (seconds) whose report missed some of its crashes (computed while
/// they were still arriving) is computed once more: the evidence covers the whole burst.
const QUIET_SECS: i64 = 60;

/// Why correlations failed.
#[derive(Debug, thiserror::Error)]
pub enum CorrelationError {
    /// The database failed.
    #[error("correlations: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored report is not readable.
    #[error("correlations: stored report: {0}")]
    Stored(#[from] serde_json::Error),
}

/// A group's correlations as computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationReport {
    /// The group.
    pub group_id: i64,
    /// When it was computed (Unix seconds).
    pub computed_at: i64,
    /// The window compared: from a day before the group's oldest crash read to the computation.
    pub since: i64,
    /// The releases the reference set was drawn from (empty: all).
    pub releases: Vec<String>,
    /// Crashes of the group read.
    pub group_crashes: u64,
    /// Crashes of the reference set read (the project's, the group's included).
    pub reference_crashes: u64,
    /// What deviates, single attributes first by the difference of shares, then pairs.
    pub deviations: Vec<Deviation>,
}

/// Correlations in, stored; out, for the evidence.
pub struct Correlations {
    pool: AnyPool,
    max_age_secs: i64,
}

impl Correlations {
    /// Over the crash index's database; reports older than `max_age_days` are stale.
    pub fn new(pool: AnyPool, max_age_days: u64) -> Correlations {
        Correlations {
            pool,
            max_age_secs: max_age_days as i64 * 86_400,
        }
    }

    /// Whether a report is too old to show without saying so.
    pub fn is_stale(&self, report: &CorrelationReport) -> bool {
        crate::clock::now() - report.computed_at > self.max_age_secs
    }

    /// The stored report of a group.
    pub async fn stored(
        &self,
        group_id: i64,
    ) -> Result<Option<CorrelationReport>, CorrelationError> {
        let row = sqlx::query("SELECT report FROM group_correlations WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(serde_json::from_str(
                &row.try_get::<String, _>("report")?,
            )?)),
            None => Ok(None),
        }
    }

    /// Groups whose correlations are missing, or whose crashes grew by a quarter since (not in
    /// the last ten minutes, unless the group is small), or are older than the stale age while
    /// crashes came, or that spike this hour (`group::spike`, in SQL) and were not computed in
    /// it — a spike changes what is special about a group's crashes — or whose report missed
    /// crashes that came during or after it and have been quiet since: the busiest first.
    pub async fn due(&self, limit: i64) -> Result<Vec<i64>, CorrelationError> {
        let now = crate::clock::now();
        let hour = now - now.rem_euclid(3600);
        let rows = sqlx::query(
            "SELECT g.id FROM crash_groups g LEFT JOIN group_correlations c ON c.group_id = g.id \
             WHERE g.merged_into IS NULL AND g.event_count >= $1 AND (c.group_id IS NULL \
             OR (g.event_count * 100 >= c.group_events * $2 \
                 AND (c.computed_at < $3 OR c.group_events < $6)) \
             OR (c.computed_at < $4 AND g.last_seen > c.computed_at) \
             OR (c.computed_at < $7 AND g.last_seen >= $7 AND g.id IN ( \
                 SELECT h.group_id FROM group_hours h WHERE h.hour = $7 AND h.events >= $8 \
                 AND h.events * 24 >= $9 * (SELECT COALESCE(SUM(d.events), 0) FROM group_hours d \
                     WHERE d.group_id = h.group_id AND d.hour >= $10 AND d.hour < $7))) \
             OR (g.event_count > c.group_events AND g.last_seen >= c.computed_at \
                 AND g.last_seen < $11)) \
             ORDER BY g.event_count DESC, g.id LIMIT $5",
        )
        .bind(deviations::MIN_COUNT as i64)
        .bind((GROWTH * 100.0) as i64)
        .bind(now - MIN_AGE_SECS)
        .bind(now - self.max_age_secs)
        .bind(limit)
        .bind(SMALL_GROUP)
        .bind(hour)
        .bind(SPIKE_EVENTS)
        .bind(SPIKE_FACTOR)
        .bind(hour - 86_400)
        .bind(now - QUIET_SECS)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().filter_map(|r| r.try_get("id").ok()).collect())
    }

    /// Computes and stores every due group's correlations (at most `limit`); how many.
    pub async fn run_due(&self, limit: i64) -> Result<usize, CorrelationError> {
        let due = self.due(limit).await?;
        for &group in &due {
            self.compute(group).await?;
        }
        Ok(due.len())
    }

    /// A group's correlations: the story of one computation.
    pub async fn compute(
        &self,
        group_id: i64,
    ) -> Result<Option<CorrelationReport>, CorrelationError> {
        let Some((project_id, events)) = self.group(group_id).await? else {
            return Ok(None);
        };
        let now = crate::clock::now();
        let group = self
            .attributes("c.group_id = $1", &[Bind::Int(group_id)], GROUP_CRASHES)
            .await?;
        let since = group.iter().map(|c| c.0).min().unwrap_or(now) - REFERENCE_LEAD_SECS;
        let releases = releases_of(&group);
        let reference = self.reference(project_id, since, &releases).await?;
        let group_items: Vec<Vec<Item>> = group.into_iter().map(|c| c.1).collect();
        let reference_items: Vec<Vec<Item>> = reference.into_iter().map(|c| c.1).collect();
        // On a thread of its own: never on the worker pool that processes crashes.
        let found = tokio::task::spawn_blocking(move || {
            let found = deviations::find_deviations(&group_items, &reference_items);
            (
                found,
                group_items.len() as u64,
                reference_items.len() as u64,
            )
        })
        .await;
        let Ok((deviations, group_crashes, reference_crashes)) = found else {
            return Ok(None);
        };
        let report = CorrelationReport {
            group_id,
            computed_at: now,
            since,
            releases,
            group_crashes,
            reference_crashes,
            deviations,
        };
        self.store(&report, events).await?;
        Ok(Some(report))
    }

    async fn group(&self, group_id: i64) -> Result<Option<(i64, i64)>, CorrelationError> {
        let row = sqlx::query(
            "SELECT project_id, event_count FROM crash_groups WHERE id = $1 AND merged_into IS NULL",
        )
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("project_id")?, row.try_get("event_count")?)),
            None => None,
        })
    }

    /// The project's crashes since `since`, from the group's releases when it has some.
    async fn reference(
        &self,
        project_id: i64,
        since: i64,
        releases: &[String],
    ) -> Result<Vec<(i64, Vec<Item>)>, CorrelationError> {
        let mut binds = vec![Bind::Int(project_id), Bind::Int(since)];
        let mut filter = "c.project_id = $1 AND c.received_at >= $2".to_owned();
        if !releases.is_empty() {
            let marks: Vec<String> = (0..releases.len()).map(|i| format!("${}", i + 3)).collect();
            filter.push_str(&format!(" AND c.release IN ({})", marks.join(", ")));
            binds.extend(releases.iter().cloned().map(Bind::Text));
        }
        self.attributes(&filter, &binds, REFERENCE_CRASHES).await
    }

    /// The newest `limit` crashes matching `filter` (on `crashes c`), each with when it came
    /// and its attributes.
    async fn attributes(
        &self,
        filter: &str,
        binds: &[Bind],
        limit: i64,
    ) -> Result<Vec<(i64, Vec<Item>)>, CorrelationError> {
        let crashes_sql = format!(
            "SELECT c.id, c.received_at, c.product, c.release, c.platform, c.cpu, c.facts \
             FROM crashes c WHERE {filter} ORDER BY c.received_at DESC LIMIT {limit}"
        );
        let rows = bind_all(sqlx::query(&crashes_sql), binds)
            .fetch_all(&self.pool)
            .await?;
        let mut crashes: std::collections::HashMap<String, (i64, Vec<Item>)> = Default::default();
        for row in &rows {
            let mut items = Vec::new();
            for (key, column) in [
                ("product", "product"),
                ("release", "release"),
                ("os", "platform"),
                ("cpu", "cpu"),
            ] {
                if let Some(value) = row.try_get::<Option<String>, _>(column)? {
                    items.push((key.to_owned(), value));
                }
            }
            if let Some(facts) = row.try_get::<Option<String>, _>("facts")? {
                // Written by the recorder; a row it cannot read adds nothing rather than failing
                // the group's correlations.
                let facts: BTreeMap<String, String> =
                    serde_json::from_str(&facts).unwrap_or_default();
                items.extend(facts);
            }
            crashes.insert(row.try_get("id")?, (row.try_get("received_at")?, items));
        }
        let annotations_sql = format!(
            "SELECT a.crash_id, a.name, a.value FROM crash_annotations a WHERE a.crash_id IN \
             (SELECT c.id FROM crashes c WHERE {filter} ORDER BY c.received_at DESC LIMIT {limit})"
        );
        let rows = bind_all(sqlx::query(&annotations_sql), binds)
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let value: String = row.try_get("value")?;
            if value.len() > crate::group::MAX_ATTRIBUTE_VALUE {
                continue;
            }
            let id: String = row.try_get("crash_id")?;
            if let Some(crash) = crashes.get_mut(&id) {
                let name: String = row.try_get("name")?;
                crash.1.push((format!("annotation.{name}"), value));
            }
        }
        Ok(crashes.into_values().collect())
    }

    async fn store(&self, report: &CorrelationReport, events: i64) -> Result<(), CorrelationError> {
        sqlx::query(
            "INSERT INTO group_correlations (group_id, computed_at, group_events, report) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (group_id) DO UPDATE SET \
             computed_at = excluded.computed_at, group_events = excluded.group_events, \
             report = excluded.report",
        )
        .bind(report.group_id)
        .bind(report.computed_at)
        .bind(events)
        .bind(serde_json::to_string(report)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The releases of the group's crashes, most crashes first (at most `RELEASES`).
fn releases_of(group: &[(i64, Vec<Item>)]) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for (_, items) in group {
        for (key, value) in items {
            if key == "release" {
                *counts.entry(value.as_str()).or_default() += 1;
            }
        }
    }
    let mut releases: Vec<(&str, usize)> = counts.into_iter().collect();
    releases.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    releases
        .into_iter()
        .take(RELEASES)
        .map(|(r, _)| r.to_owned())
        .collect()
}

/// A value bound to a numbered placeholder.
enum Bind {
    Int(i64),
    Text(String),
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Int(i) => query.bind(*i),
            Bind::Text(s) => query.bind(s.as_str()),
        };
    }
    query
}
