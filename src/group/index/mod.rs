//! The crash index: every crash (one row each, so counts are exact), the groups fingerprints
//! put them in, and the state triage gives groups. SQLite is the embedded default; queries are
//! portable SQL through sqlx's `Any` driver so Postgres can take over for multi-node setups.
//!
//! Recording a crash (`record.rs`, in one transaction with the other crashes queued at the same
//! time): find its group by fingerprint (or create one), apply the payload budget, insert the
//! crash and its annotations, update the group's counts, releases and distinct users, and reopen
//! it as a regression when a crash arrives from a release newer than the one it was resolved in.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::version;

mod record;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error("crash index: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("crash index migration failed: {0} (is the database from a newer faultline?)")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A request the index refuses (merging a group into itself, a bad cursor…).
    #[error("{0}")]
    Invalid(String),
}

/// Whether `error` means another writer got in the way (a deadlock, a serialization failure,
/// the same row inserted at the same time), so the transaction is worth trying again.
pub(crate) fn lost_a_race(error: &IndexError) -> bool {
    match error {
        IndexError::Database(sqlx::Error::Database(e)) => {
            e.is_unique_violation() || matches!(e.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// How many processed payloads to keep; the crash rows and counts are always kept.
#[derive(Debug, Clone, Copy)]
pub struct PayloadBudget {
    /// Every crash of a new group keeps its payload until the group has this many.
    pub per_new_group: i64,
    /// After that, at most this many per group per hour.
    pub per_group_hour: i64,
}

/// What the index keeps about one crash, whether it is being recorded or read back.
#[derive(Debug, Clone, Serialize)]
pub struct CrashAttributes {
    /// Its ID.
    pub id: String,
    /// The project it was filed under (its ingest key's, or the default project).
    pub project_id: i64,
    /// When it was received, Unix seconds.
    pub received_at: i64,
    /// Product name, from annotations.
    pub product: Option<String>,
    /// Release / version, from annotations.
    pub release: Option<String>,
    /// Operating system.
    pub platform: Option<String>,
    /// The user it happened to (from the configured annotation), for distinct-user counts.
    pub user_id: Option<String>,
    /// Every annotation.
    pub annotations: BTreeMap<String, String>,
    /// The grouping hash.
    pub fingerprint: String,
    /// The signature.
    pub signature: String,
    /// The fault class.
    pub fault_class: String,
}

/// A crash to record.
#[derive(Debug, Clone)]
pub struct NewCrash {
    /// The crash.
    pub attributes: CrashAttributes,
    /// Where its processed payload goes if the budget keeps it.
    pub payload_key: String,
}

/// What recording a crash did.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// The group it joined.
    pub group_id: i64,
    /// Whether the group was created for it.
    pub new_group: bool,
    /// Whether its payload should be stored (the payload budget allowed it).
    pub keep_payload: bool,
    /// Whether it reopened a resolved group.
    pub regressed: bool,
}

/// A group as triage sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// ID.
    pub id: i64,
    /// The project its crashes belong to (groups never span projects).
    pub project_id: i64,
    /// Signature (of its first crash).
    pub signature: String,
    /// Fault class.
    pub fault_class: String,
    /// First crash, Unix seconds.
    pub first_seen: i64,
    /// Latest crash, Unix seconds.
    pub last_seen: i64,
    /// Crashes in the group.
    pub event_count: i64,
    /// Distinct users affected.
    pub user_count: i64,
    /// Oldest release seen (by version order).
    pub first_release: Option<String>,
    /// Newest release seen.
    pub last_release: Option<String>,
    /// open, resolved or muted.
    pub state: String,
    /// Who is on it.
    pub assignee: Option<String>,
    /// The release it was fixed in.
    pub resolved_in: Option<String>,
    /// Reopened by a crash from a newer release than `resolved_in`.
    pub regressed: bool,
    /// Payloads kept, and crashes whose payload the budget dropped (counted, not stored).
    pub payloads_kept: i64,
    /// See `payloads_kept`.
    pub payloads_dropped: i64,
    /// Every fingerprint that maps to it.
    pub fingerprints: Vec<String>,
}

/// A crash row.
#[derive(Debug, Clone, Serialize)]
pub struct CrashRow {
    /// The crash.
    #[serde(flatten)]
    pub attributes: CrashAttributes,
    /// Group.
    pub group_id: i64,
    /// Processing state.
    pub state: String,
    /// Where the processed payload is, if kept.
    pub payload_key: Option<String>,
}

/// How to sort groups (always descending, ties by ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSort {
    /// Most crashes first.
    Events,
    /// Most users first.
    Users,
    /// Most recent crash first.
    LastSeen,
    /// Newest groups first.
    FirstSeen,
}

impl GroupSort {
    fn column(self) -> &'static str {
        match self {
            GroupSort::Events => "event_count",
            GroupSort::Users => "user_count",
            GroupSort::LastSeen => "last_seen",
            GroupSort::FirstSeen => "first_seen",
        }
    }
}

/// Filters, sort and page for listing groups.
#[derive(Debug, Clone)]
pub struct GroupQuery {
    /// The project whose groups to list.
    pub project_id: i64,
    /// open / resolved / muted.
    pub state: Option<String>,
    /// Groups with a crash from this product.
    pub product: Option<String>,
    /// Groups with a crash from this release.
    pub release: Option<String>,
    /// Groups of this class.
    pub fault_class: Option<String>,
    /// Groups with a crash at or after this time.
    pub since: Option<i64>,
    /// Groups with a crash at or before this time.
    pub until: Option<i64>,
    /// Groups with a crash carrying this annotation value.
    pub annotation: Option<(String, String)>,
    /// Sort order.
    pub sort: GroupSort,
    /// Page size.
    pub limit: i64,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Counts by one attribute.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// The attribute's value (`null` when crashes did not say).
    pub value: Option<String>,
    /// Crashes with it.
    pub count: i64,
}

/// A group with its history.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDetail {
    /// The group.
    #[serde(flatten)]
    pub group: Group,
    /// Crashes per hour: (hour start, Unix seconds; count).
    pub hourly: Vec<(i64, i64)>,
    /// Crashes per release.
    pub by_release: Vec<Breakdown>,
    /// Crashes per operating system.
    pub by_platform: Vec<Breakdown>,
    /// Crashes per product.
    pub by_product: Vec<Breakdown>,
    /// The latest crashes with a kept payload.
    pub samples: Vec<CrashRow>,
}

/// What a triage update changes (absent fields stay).
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    /// open, resolved or muted.
    pub state: Option<String>,
    /// `Some(None)` unassigns.
    pub assignee: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub resolved_in: Option<Option<String>>,
}

/// The database under the crash index (and the ingest queue, projects and tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: one node, one writer (the embedded default).
    Sqlite,
    /// Postgres: any number of nodes.
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL, or why it is not one faultline can use.
    pub fn of(url: &str) -> Result<Dialect, IndexError> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(IndexError::Invalid(format!(
                "unsupported crash index URL {url:?}: use sqlite://PATH?mode=rwc or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )))
        }
    }
}

/// The crash index.
pub struct CrashIndex {
    pool: AnyPool,
    dialect: Dialect,
    budget: PayloadBudget,
    /// One writer per node: while it writes, the next batch forms (group commit). Across
    /// nodes (Postgres), fingerprint inserts and group row locks order the writers.
    write: tokio::sync::Mutex<()>,
    /// Crashes waiting to be recorded by whoever holds `write` (group commit, see `record.rs`).
    queue: record::RecordQueue,
}

const GROUP_COLUMNS: &str = "id, project_id, signature, fault_class, first_seen, last_seen, event_count, user_count, \
     first_release, last_release, state, assignee, resolved_in, regressed, payloads_kept, payloads_dropped";

/// [`GROUP_COLUMNS`] of a table aliased `g`.
const GROUP_COLUMNS_OF_G: &str =
    "g.id, g.project_id, g.signature, g.fault_class, g.first_seen, g.last_seen, \
     g.event_count, g.user_count, g.first_release, g.last_release, g.state, g.assignee, \
     g.resolved_in, g.regressed, g.payloads_kept, g.payloads_dropped";

const CRASH_COLUMNS: &str =
    "id, project_id, received_at, product, release, platform, user_id, annotations, fingerprint, \
     signature, fault_class, group_id, state, payload_key";

fn group_from(row: &AnyRow) -> Result<Group, sqlx::Error> {
    Ok(Group {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        signature: row.try_get("signature")?,
        fault_class: row.try_get("fault_class")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        event_count: row.try_get("event_count")?,
        user_count: row.try_get("user_count")?,
        first_release: row.try_get("first_release")?,
        last_release: row.try_get("last_release")?,
        state: row.try_get("state")?,
        assignee: row.try_get("assignee")?,
        resolved_in: row.try_get("resolved_in")?,
        regressed: row.try_get::<i64, _>("regressed")? != 0,
        payloads_kept: row.try_get("payloads_kept")?,
        payloads_dropped: row.try_get("payloads_dropped")?,
        fingerprints: Vec::new(),
    })
}

fn crash_from(row: &AnyRow) -> Result<CrashRow, sqlx::Error> {
    let annotations: String = row.try_get("annotations")?;
    Ok(CrashRow {
        attributes: CrashAttributes {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            received_at: row.try_get("received_at")?,
            product: row.try_get("product")?,
            release: row.try_get("release")?,
            platform: row.try_get("platform")?,
            user_id: row.try_get("user_id")?,
            annotations: serde_json::from_str(&annotations).unwrap_or_default(),
            fingerprint: row.try_get("fingerprint")?,
            signature: row.try_get("signature")?,
            fault_class: row.try_get("fault_class")?,
        },
        group_id: row.try_get("group_id")?,
        state: row.try_get("state")?,
        payload_key: row.try_get("payload_key")?,
    })
}

/// A value bound into a dynamically built query.
enum Bind {
    Text(String),
    Int(i64),
}

/// Builds `WHERE` clauses with numbered placeholders (`$1`, `$2`… — valid in SQLite and Postgres).
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    fn next(&self) -> String {
        format!("${}", self.binds.len() + 1)
    }

    fn text(&mut self, clause: impl FnOnce(&str) -> String, value: String) {
        let p = self.next();
        self.clauses.push(clause(&p));
        self.binds.push(Bind::Text(value));
    }

    fn int(&mut self, clause: impl FnOnce(&str) -> String, value: i64) {
        let p = self.next();
        self.clauses.push(clause(&p));
        self.binds.push(Bind::Int(value));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn apply<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(s) => query.bind(s.as_str()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

impl CrashIndex {
    /// Opens (creating and migrating) the index at `url`: `sqlite://PATH?mode=rwc` (the embedded
    /// default) or `postgres://USER:PASSWORD@HOST/DB` (several nodes sharing one index). Nodes
    /// that start at once migrate once: the Postgres migrator holds an advisory lock.
    pub async fn open(url: &str, budget: PayloadBudget) -> Result<CrashIndex, IndexError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url)?;
        let sqlite = dialect == Dialect::Sqlite;
        let pool = AnyPoolOptions::new()
            // One connection for SQLite: its single writer and an in-memory database both need it.
            .max_connections(if sqlite { 1 } else { 16 })
            // SQLite runs in this process: checking the connection before each use would only
            // add a round trip to every transaction.
            .test_before_acquire(!sqlite)
            // Per-connection settings, on every connection the pool ever opens (WAL is kept in
            // the file; synchronous and temp_store are not).
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA temp_store = MEMORY",
                            "PRAGMA cache_size = -65536",
                        ] {
                            sqlx::query(pragma).execute(&mut *connection).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Dialect::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(CrashIndex {
            pool,
            dialect,
            budget,
            write: tokio::sync::Mutex::new(()),
            queue: record::RecordQueue::default(),
        })
    }

    /// A transaction that will write: on SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction never reads, then finds another connection wrote first.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, IndexError> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }

    /// Which database this is (for the few statements the dialects spell differently).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The database pool (the ingest queue lives in the same database, so queue changes and
    /// index changes can share a transaction).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Removes a crash from the index inside `tx` (for reprocessing): its row and annotations go,
    /// its group's counts go down (distinct users are recounted), and a group left empty is
    /// deleted with its fingerprints. First/last seen and releases are left as they were.
    pub async fn forget(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        crash_id: &str,
    ) -> Result<(), IndexError> {
        let row =
            sqlx::query("SELECT group_id, received_at, payload_key FROM crashes WHERE id = $1")
                .bind(crash_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(row) = row else { return Ok(()) };
        let group_id: i64 = row.try_get("group_id")?;
        let received_at: i64 = row.try_get("received_at")?;
        let kept = i64::from(row.try_get::<Option<String>, _>("payload_key")?.is_some());
        let hour = received_at - received_at.rem_euclid(3600);
        for sql in [
            "DELETE FROM crash_annotations WHERE crash_id = $1",
            "DELETE FROM crashes WHERE id = $1",
        ] {
            sqlx::query(sql).bind(crash_id).execute(&mut **tx).await?;
        }
        sqlx::query(
            "UPDATE crash_groups SET event_count = event_count - 1, payloads_kept = payloads_kept - $1,              payloads_dropped = payloads_dropped - $2 WHERE id = $3",
        )
        .bind(kept)
        .bind(1 - kept)
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE group_hours SET events = events - 1, payloads = payloads - $1 WHERE group_id = $2 AND hour = $3")
            .bind(kept)
            .bind(group_id)
            .bind(hour)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM group_hours WHERE group_id = $1 AND events <= 0")
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM group_users WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO group_users (group_id, user_id) SELECT DISTINCT group_id, user_id FROM crashes              WHERE group_id = $1 AND user_id IS NOT NULL",
        )
        .bind(group_id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE crash_groups SET user_count = (SELECT COUNT(*) FROM group_users WHERE group_id = $1) WHERE id = $2")
            .bind(group_id)
            .bind(group_id)
            .execute(&mut **tx)
            .await?;
        let left: i64 = sqlx::query("SELECT event_count FROM crash_groups WHERE id = $1")
            .bind(group_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("event_count")?;
        if left <= 0 {
            for sql in [
                "DELETE FROM group_fingerprints WHERE group_id = $1",
                "DELETE FROM crash_groups WHERE id = $1",
            ] {
                sqlx::query(sql).bind(group_id).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Forgets a payload whose storage failed after recording.
    pub async fn drop_payload(&self, crash_id: &str) -> Result<(), IndexError> {
        let _writer = self.write.lock().await;
        let row =
            sqlx::query("SELECT group_id FROM crashes WHERE id = $1 AND payload_key IS NOT NULL")
                .bind(crash_id)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(row) = row {
            let group_id: i64 = row.try_get("group_id")?;
            sqlx::query("UPDATE crashes SET payload_key = NULL WHERE id = $1")
                .bind(crash_id)
                .execute(&self.pool)
                .await?;
            sqlx::query("UPDATE crash_groups SET payloads_kept = payloads_kept - 1, payloads_dropped = payloads_dropped + 1 WHERE id = $1")
                .bind(group_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn fingerprints(&self, group_id: i64) -> Result<Vec<String>, IndexError> {
        let rows = sqlx::query(
            "SELECT fingerprint FROM group_fingerprints WHERE group_id = $1 ORDER BY fingerprint",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("fingerprint"))
            .collect::<Result<_, _>>()?)
    }

    /// One group (not merged away), with its fingerprints.
    pub async fn group(&self, id: i64) -> Result<Option<Group>, IndexError> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM crash_groups WHERE id = $1 AND merged_into IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut group = group_from(&row)?;
        group.fingerprints = self.fingerprints(id).await?;
        Ok(Some(group))
    }

    /// Which group a merged group went into.
    pub async fn merged_into(&self, id: i64) -> Result<Option<i64>, IndexError> {
        let row = sqlx::query("SELECT merged_into FROM crash_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| r.try_get::<Option<i64>, _>("merged_into").ok().flatten()))
    }

    /// Lists groups.
    pub async fn groups(&self, query: &GroupQuery) -> Result<Page<Group>, IndexError> {
        let mut filter = Filter::default();
        filter.clauses.push("merged_into IS NULL".to_owned());
        filter.int(|p| format!("project_id = {p}"), query.project_id);
        if let Some(state) = &query.state {
            filter.text(|p| format!("state = {p}"), state.clone());
        }
        if let Some(class) = &query.fault_class {
            filter.text(|p| format!("fault_class = {p}"), class.clone());
        }
        if let Some(product) = &query.product {
            filter.text(
                |p| format!("id IN (SELECT group_id FROM crashes WHERE product = {p})"),
                product.clone(),
            );
        }
        if let Some(release) = &query.release {
            filter.text(
                |p| format!("id IN (SELECT group_id FROM crashes WHERE release = {p})"),
                release.clone(),
            );
        }
        if let Some(since) = query.since {
            filter.int(
                |p| format!("id IN (SELECT group_id FROM crashes WHERE received_at >= {p})"),
                since,
            );
        }
        if let Some(until) = query.until {
            filter.int(
                |p| format!("id IN (SELECT group_id FROM crashes WHERE received_at <= {p})"),
                until,
            );
        }
        if let Some((name, value)) = &query.annotation {
            let (pn, pv) = (filter.next(), format!("${}", filter.binds.len() + 2));
            filter.clauses.push(format!(
                "id IN (SELECT c.group_id FROM crashes c JOIN crash_annotations a ON a.crash_id = c.id \
                 WHERE a.name = {pn} AND a.value = {pv})"
            ));
            filter.binds.push(Bind::Text(name.clone()));
            filter.binds.push(Bind::Text(value.clone()));
        }
        let column = query.sort.column();
        if let Some(cursor) = &query.cursor {
            let (value, id) = cursor
                .split_once('_')
                .and_then(|(v, i)| Some((v.parse::<i64>().ok()?, i.parse::<i64>().ok()?)))
                .ok_or_else(|| {
                    IndexError::Invalid(format!(
                        "invalid cursor {cursor:?}: pass back next_cursor unchanged"
                    ))
                })?;
            let (a, b, c) = (
                filter.next(),
                format!("${}", filter.binds.len() + 2),
                format!("${}", filter.binds.len() + 3),
            );
            filter
                .clauses
                .push(format!("({column} < {a} OR ({column} = {b} AND id < {c}))"));
            filter
                .binds
                .extend([Bind::Int(value), Bind::Int(value), Bind::Int(id)]);
        }
        let limit = query.limit.clamp(1, 500);
        let sql = format!(
            "SELECT {GROUP_COLUMNS} FROM crash_groups{} ORDER BY {column} DESC, id DESC LIMIT {}",
            filter.sql(),
            limit + 1
        );
        let rows = filter
            .apply(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(group_from).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|g| {
                let value = match query.sort {
                    GroupSort::Events => g.event_count,
                    GroupSort::Users => g.user_count,
                    GroupSort::LastSeen => g.last_seen,
                    GroupSort::FirstSeen => g.first_seen,
                };
                format!("{value}_{}", g.id)
            })
        } else {
            None
        };
        for group in &mut items {
            group.fingerprints = self.fingerprints(group.id).await?;
        }
        Ok(Page { items, next_cursor })
    }

    async fn breakdown(&self, id: i64, column: &str) -> Result<Vec<Breakdown>, IndexError> {
        let rows = sqlx::query(&format!(
            "SELECT {column} AS value, COUNT(*) AS count FROM crashes WHERE group_id = $1 \
             GROUP BY {column} ORDER BY count DESC, value"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Breakdown {
                    value: r.try_get("value")?,
                    count: r.try_get("count")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// A group with its history: hourly counts, breakdowns, sample crashes.
    pub async fn group_detail(&self, id: i64) -> Result<Option<GroupDetail>, IndexError> {
        let Some(group) = self.group(id).await? else {
            return Ok(None);
        };
        let hourly =
            sqlx::query("SELECT hour, events FROM group_hours WHERE group_id = $1 ORDER BY hour")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("hour")?, r.try_get("events")?)))
                .collect::<Result<_, sqlx::Error>>()?;
        let samples = sqlx::query(&format!(
            "SELECT {CRASH_COLUMNS} FROM crashes WHERE group_id = $1 AND payload_key IS NOT NULL \
             ORDER BY received_at DESC, id DESC LIMIT 10"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(crash_from)
        .collect::<Result<_, _>>()?;
        Ok(Some(GroupDetail {
            by_release: self.breakdown(id, "release").await?,
            by_platform: self.breakdown(id, "platform").await?,
            by_product: self.breakdown(id, "product").await?,
            group,
            hourly,
            samples,
        }))
    }

    /// Applies a triage update; `None` when there is no such group.
    pub async fn update_group(
        &self,
        id: i64,
        patch: &GroupPatch,
    ) -> Result<Option<Group>, IndexError> {
        if let Some(state) = &patch.state {
            if !["open", "resolved", "muted"].contains(&state.as_str()) {
                return Err(IndexError::Invalid(format!(
                    "state must be open, resolved or muted, not {state:?}"
                )));
            }
        }
        {
            let _writer = self.write.lock().await;
            if self.group(id).await?.is_none() {
                return Ok(None);
            }
            if let Some(state) = &patch.state {
                // Reopening or resolving clears the regression flag.
                sqlx::query("UPDATE crash_groups SET state = $1, regressed = 0 WHERE id = $2")
                    .bind(state.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            if let Some(assignee) = &patch.assignee {
                sqlx::query("UPDATE crash_groups SET assignee = $1 WHERE id = $2")
                    .bind(assignee.clone())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            if let Some(resolved_in) = &patch.resolved_in {
                sqlx::query("UPDATE crash_groups SET resolved_in = $1 WHERE id = $2")
                    .bind(resolved_in.clone())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        self.group(id).await
    }

    /// Merges `from` groups into `into`: their fingerprints, crashes, users and counts move;
    /// they are left as redirects (`merged_into`).
    pub async fn merge(&self, into: i64, from: &[i64]) -> Result<Option<Group>, IndexError> {
        if from.contains(&into) {
            return Err(IndexError::Invalid(
                "a group cannot be merged into itself".to_owned(),
            ));
        }
        let _writer = self.write.lock().await;
        let mut tx = self.begin_write().await?;
        if self.dialect == Dialect::Postgres {
            let mut ids: Vec<i64> = from.iter().copied().chain([into]).collect();
            ids.sort_unstable();
            ids.dedup();
            record::lock_groups(&mut tx, &ids).await?;
        }
        let exists =
            sqlx::query("SELECT id FROM crash_groups WHERE id = $1 AND merged_into IS NULL")
                .bind(into)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        for &source in from {
            let row = sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM crash_groups WHERE id = $1 AND merged_into IS NULL"
            ))
            .bind(source)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                IndexError::Invalid(format!(
                    "group {source} does not exist or was already merged"
                ))
            })?;
            let source_group = group_from(&row)?;
            let target_project: i64 =
                sqlx::query("SELECT project_id FROM crash_groups WHERE id = $1")
                    .bind(into)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("project_id")?;
            if source_group.project_id != target_project {
                return Err(IndexError::Invalid(format!(
                    "group {source} belongs to another project: groups merge only within a project"
                )));
            }
            for sql in [
                "UPDATE group_fingerprints SET group_id = $1 WHERE group_id = $2",
                "UPDATE crashes SET group_id = $1 WHERE group_id = $2",
            ] {
                sqlx::query(sql)
                    .bind(into)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO group_users (group_id, user_id) SELECT $1, user_id FROM group_users u \
                 WHERE u.group_id = $2 AND NOT EXISTS \
                 (SELECT 1 FROM group_users v WHERE v.group_id = $3 AND v.user_id = u.user_id)",
            )
            .bind(into)
            .bind(source)
            .bind(into)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM group_users WHERE group_id = $1")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            let hours =
                sqlx::query("SELECT hour, events, payloads FROM group_hours WHERE group_id = $1")
                    .bind(source)
                    .fetch_all(&mut *tx)
                    .await?;
            for hour in hours {
                let (h, e, p): (i64, i64, i64) = (
                    hour.try_get("hour")?,
                    hour.try_get("events")?,
                    hour.try_get("payloads")?,
                );
                let updated = sqlx::query("UPDATE group_hours SET events = events + $1, payloads = payloads + $2 WHERE group_id = $3 AND hour = $4")
                    .bind(e)
                    .bind(p)
                    .bind(into)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query("INSERT INTO group_hours (group_id, hour, events, payloads) VALUES ($1, $2, $3, $4)")
                        .bind(into)
                        .bind(h)
                        .bind(e)
                        .bind(p)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("DELETE FROM group_hours WHERE group_id = $1")
                .bind(source)
                .execute(&mut *tx)
                .await?;
            let target = group_from(
                &sqlx::query(&format!(
                    "SELECT {GROUP_COLUMNS} FROM crash_groups WHERE id = $1"
                ))
                .bind(into)
                .fetch_one(&mut *tx)
                .await?,
            )?;
            let earliest = |a: &Option<String>, b: &Option<String>| match (a, b) {
                (Some(x), Some(y)) if version::compare(y, x) == Some(std::cmp::Ordering::Less) => {
                    Some(y.clone())
                }
                (None, y) => y.clone(),
                (x, _) => x.clone(),
            };
            let latest = |a: &Option<String>, b: &Option<String>| match (a, b) {
                (Some(x), Some(y)) if version::is_newer(y, x) => Some(y.clone()),
                (None, y) => y.clone(),
                (x, _) => x.clone(),
            };
            let users: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM group_users WHERE group_id = $1")
                    .bind(into)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
            sqlx::query(
                "UPDATE crash_groups SET event_count = $1, user_count = $2, first_seen = $3, last_seen = $4, \
                 first_release = $5, last_release = $6, payloads_kept = $7, payloads_dropped = $8 WHERE id = $9",
            )
            .bind(target.event_count + source_group.event_count)
            .bind(users)
            .bind(target.first_seen.min(source_group.first_seen))
            .bind(target.last_seen.max(source_group.last_seen))
            .bind(earliest(&target.first_release, &source_group.first_release))
            .bind(latest(&target.last_release, &source_group.last_release))
            .bind(target.payloads_kept + source_group.payloads_kept)
            .bind(target.payloads_dropped + source_group.payloads_dropped)
            .bind(into)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE crash_groups SET merged_into = $1, state = 'merged' WHERE id = $2")
                .bind(into)
                .bind(source)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        drop(_writer);
        self.group(into).await
    }

    /// One crash.
    pub async fn crash(&self, id: &str) -> Result<Option<CrashRow>, IndexError> {
        let row = sqlx::query(&format!(
            "SELECT {CRASH_COLUMNS} FROM crashes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(crash_from).transpose()?)
    }

    /// Crashes of a project carrying an annotation value, newest first.
    pub async fn crashes_by_annotation(
        &self,
        project_id: i64,
        name: &str,
        value: &str,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Page<CrashRow>, IndexError> {
        let mut filter = Filter::default();
        filter.int(|p| format!("c.project_id = {p}"), project_id);
        filter.text(|p| format!("a.name = {p}"), name.to_owned());
        filter.text(|p| format!("a.value = {p}"), value.to_owned());
        if let Some(cursor) = cursor {
            let (at, id) = cursor
                .split_once('_')
                .and_then(|(t, i)| Some((t.parse::<i64>().ok()?, i.to_owned())))
                .ok_or_else(|| {
                    IndexError::Invalid(format!(
                        "invalid cursor {cursor:?}: pass back next_cursor unchanged"
                    ))
                })?;
            let (a, b, c) = (
                filter.next(),
                format!("${}", filter.binds.len() + 2),
                format!("${}", filter.binds.len() + 3),
            );
            filter.clauses.push(format!(
                "(c.received_at < {a} OR (c.received_at = {b} AND c.id < {c}))"
            ));
            filter
                .binds
                .extend([Bind::Int(at), Bind::Int(at), Bind::Text(id)]);
        }
        let limit = limit.clamp(1, 500);
        let columns = CRASH_COLUMNS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM crashes c JOIN crash_annotations a ON a.crash_id = c.id{} \
             ORDER BY c.received_at DESC, c.id DESC LIMIT {}",
            filter.sql(),
            limit + 1
        );
        let rows = filter
            .apply(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(crash_from).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items
                .last()
                .map(|c| format!("{}_{}", c.attributes.received_at, c.attributes.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
