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
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::version;
use super::CrashClass;

mod databases;
mod finished;
mod query;
mod record;
mod retention;
pub mod sessions;
pub mod user_sketch;

pub use retention::AgedPayload;
mod triage;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error("crash index: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("crash index migration failed: {0} (is the database from a newer faultline?)")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The caller asked for something the index refuses (merging a group into itself, an
    /// unknown state, a bad cursor, an unsupported URL): the caller's mistake, answered 4xx.
    #[error("{0}")]
    Rejected(String),
    /// What the index read or wrote broke one of its own invariants (a row a batch lost, a
    /// commit interrupted): faultline's failure, answered 500 with nothing internal.
    #[error("crash index invariant broken: {0}")]
    Broken(String),
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
    /// CPU architecture (`amd64`, `arm64`, `x86`…), from the dump.
    pub cpu: Option<String>,
    /// The user it happened to (from the configured annotation), for distinct-user counts.
    pub user_id: Option<String>,
    /// Every annotation.
    pub annotations: BTreeMap<String, String>,
    /// The grouping hash.
    pub fingerprint: String,
    /// The signature.
    pub signature: String,
    /// The fault class.
    pub fault_class: CrashClass,
    /// A minidump or an SDK's error event.
    pub kind: CrashKind,
}

/// What a crash was received as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// A minidump (a Sentry event sent with it only adds annotations).
    #[default]
    Minidump,
    /// An error event from a Sentry SDK: stack traces in JSON, no dump.
    Event,
}

impl CrashKind {
    /// The kind as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashKind::Minidump => "minidump",
            CrashKind::Event => "event",
        }
    }

    fn from_stored(text: &str) -> CrashKind {
        match text {
            "event" => CrashKind::Event,
            _ => CrashKind::Minidump,
        }
    }
}

/// A crash to record.
#[derive(Debug, Clone)]
pub struct NewCrash {
    /// The crash.
    pub attributes: CrashAttributes,
    /// Where its processed payload goes if the budget keeps it.
    pub payload_key: String,
    /// The first frames of its signature (function names), for alerts and tickets; not stored.
    pub top_frames: Vec<String>,
    /// A reprocessed crash: its earlier record (if any) is forgotten in the transaction that
    /// records this one. Otherwise an earlier record wins (a repeated delivery changes nothing).
    pub replaces_earlier: bool,
    /// What the correlations compare besides its annotations ([`ProcessedReport::facts`]).
    ///
    /// [`ProcessedReport::facts`]: crate::group::ProcessedReport::facts
    pub facts: BTreeMap<String, String>,
}

/// A crash the ingest queue handed out, now recorded: its queue row is marked processed.
#[derive(Debug, Clone)]
pub struct FinishedCrash {
    /// The crash.
    pub crash_id: String,
    /// The modules it lacked symbols for (an upload for one of them reprocesses it).
    pub missing_modules: Vec<MissingModule>,
    /// The debug IDs (store spelling) whose files symbolicated it: retention keeps files in use.
    pub used_modules: Vec<String>,
}

/// A module a crash had no symbols for: what someone has to upload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MissingModule {
    /// Its debug ID, as the stack walker spells it (`debug_identifier`).
    pub debug_id: String,
    /// The debug file's base name (`app.pdb`, `libfoo.so`), when the dump names it.
    pub debug_file: Option<String>,
    /// The code file's base name (`app.exe`).
    pub code_file: Option<String>,
    /// Its code ID (PE timestamp+size, ELF build ID, Mach-O UUID), lowercase hex, when the
    /// dump records one.
    pub code_id: Option<String>,
}

/// A debug file whose absence hurt crashes of a project: how many, and when last.
#[derive(Debug, Clone, Serialize)]
pub struct MissingSymbols {
    /// The module.
    #[serde(flatten)]
    pub module: MissingModule,
    /// Crashes that lacked it (and were not reprocessed with it since).
    pub crashes: i64,
    /// The latest of them, Unix seconds.
    pub last_seen: i64,
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
    /// Whether it woke a muted group (its mute's date passed or its event count was reached).
    pub woke: bool,
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
    pub fault_class: CrashClass,
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
    /// Where it is in triage.
    pub state: GroupState,
    /// Who is on it.
    pub assignee: Option<String>,
    /// The release it was fixed in.
    pub resolved_in: Option<String>,
    /// Reopened by a crash from a newer release than `resolved_in`.
    pub regressed: bool,
    /// A muted group wakes with its first crash at or after this time (Unix seconds).
    pub muted_until: Option<i64>,
    /// A muted group wakes when its event count reaches this.
    pub mute_until_events: Option<i64>,
    /// A muted group wakes when its distinct-user count reaches this.
    pub mute_until_users: Option<i64>,
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
    /// When retention deleted its payload (dumps, attachments, processed result), seconds since
    /// the Unix epoch.
    pub payload_expired_at: Option<i64>,
}

impl CrashRow {
    /// Why no processed payload can be shown, for a person reading the crash.
    pub fn payload_note(&self) -> Option<String> {
        if self.payload_key.is_some() {
            return None;
        }
        Some(match self.payload_expired_at {
            Some(at) => {
                let day = time::OffsetDateTime::from_unix_timestamp(at)
                    .map(|t| t.date().to_string())
                    .unwrap_or_default();
                format!("deleted for age on {day} (retention.payload_days); the crash is counted")
            }
            None => {
                "not kept: the group's payload budget was spent; the crash is counted".to_owned()
            }
        })
    }
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
    /// Most crashes per 1,000 sessions of the filtered release first (its sessions are the same
    /// for every group, so: most crashes in that release first). Needs a release filter.
    Rate,
}

impl GroupSort {
    /// A sort by its name in a query string.
    pub fn parse(name: &str) -> Result<GroupSort, String> {
        match name {
            "events" => Ok(GroupSort::Events),
            "users" => Ok(GroupSort::Users),
            "last_seen" => Ok(GroupSort::LastSeen),
            "first_seen" => Ok(GroupSort::FirstSeen),
            "rate" => Ok(GroupSort::Rate),
            other => Err(format!(
                "sort by events, users, last_seen, first_seen or rate (with a release), not {other:?}"
            )),
        }
    }

    /// The column sorted by (`Rate` sorts by a count, see `CrashIndex::groups`).
    fn column(self) -> &'static str {
        match self {
            GroupSort::Events => "event_count",
            GroupSort::Users => "user_count",
            GroupSort::LastSeen => "last_seen",
            GroupSort::FirstSeen | GroupSort::Rate => "first_seen",
        }
    }
}

/// Filters, sort and page for listing groups.
#[derive(Debug, Clone)]
pub struct GroupQuery {
    /// The project whose groups to list.
    pub project_id: i64,
    /// Only groups in this state.
    pub state: Option<GroupState>,
    /// Groups with a crash from this product.
    pub product: Option<String>,
    /// Groups with a crash from this release.
    pub release: Option<String>,
    /// Groups of this class.
    pub fault_class: Option<CrashClass>,
    /// Groups with a crash at or after this time.
    pub since: Option<i64>,
    /// Groups with a crash at or before this time.
    pub until: Option<i64>,
    /// Groups with a crash carrying this annotation value.
    pub annotation: Option<(String, String)>,
    /// Groups assigned to this person.
    pub assignee: Option<String>,
    /// Groups whose signature contains this text (any case).
    pub signature_contains: Option<String>,
    /// Sort order.
    pub sort: GroupSort,
    /// Page size.
    pub limit: i64,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl GroupQuery {
    /// Every group of a project, sorted by `sort`, the first page of 25: narrow it by setting
    /// fields.
    pub fn new(project_id: i64, sort: GroupSort) -> GroupQuery {
        GroupQuery {
            project_id,
            state: None,
            product: None,
            release: None,
            fault_class: None,
            since: None,
            until: None,
            annotation: None,
            assignee: None,
            signature_contains: None,
            sort,
            limit: 25,
            cursor: None,
        }
    }
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
    /// Crashes per CPU architecture.
    pub by_cpu: Vec<Breakdown>,
    /// The latest crashes with a kept payload.
    pub samples: Vec<CrashRow>,
}

/// Where a group is in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Needs someone (new groups, regressions, mutes that ended).
    Open,
    /// Someone is on it.
    InProgress,
    /// Fixed, in `resolved_in` when given: a crash from a newer release reopens it.
    Resolved,
    /// Ignored, until `muted_until`, `mute_until_events` or `mute_until_users` when given.
    Muted,
    /// Moved into another group (`merged_into`); kept as a redirect, never listed.
    Merged,
}

impl GroupState {
    /// The states a person may give a group (merging is its own action).
    pub const SETTABLE: [GroupState; 4] = [
        GroupState::Open,
        GroupState::InProgress,
        GroupState::Resolved,
        GroupState::Muted,
    ];

    /// Its name in JSON, queries, forms and the database (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Open => "open",
            GroupState::InProgress => "in_progress",
            GroupState::Resolved => "resolved",
            GroupState::Muted => "muted",
            GroupState::Merged => "merged",
        }
    }

    /// The state named `name`, any of the five.
    pub fn named(name: &str) -> Option<GroupState> {
        Self::SETTABLE
            .into_iter()
            .chain([GroupState::Merged])
            .find(|s| s.as_str() == name)
    }

    /// A state a person may set, or the error that lists them.
    pub fn settable(name: &str) -> Result<GroupState, IndexError> {
        Self::SETTABLE
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                IndexError::Rejected(format!(
                    "state must be one of {}, not {name:?}",
                    Self::SETTABLE.map(GroupState::as_str).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a crash's or group's class column.
fn class_column(row: &AnyRow) -> Result<CrashClass, sqlx::Error> {
    let name: String = row.try_get("fault_class")?;
    CrashClass::named(&name)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown crash class {name:?}").into()))
}

/// Reads a group's state column.
fn state_column(row: &AnyRow, column: &str) -> Result<GroupState, sqlx::Error> {
    let name: String = row.try_get(column)?;
    GroupState::named(&name)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown group state {name:?}").into()))
}

/// What a triage update changes (absent fields stay).
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    /// The new state (one of [`GroupState::SETTABLE`]).
    pub state: Option<GroupState>,
    /// `Some(None)` unassigns.
    pub assignee: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub resolved_in: Option<Option<String>>,
    /// When a mute ends (Unix seconds); `Some(None)` clears it.
    pub muted_until: Option<Option<i64>>,
    /// A mute ends after this many more crashes; `Some(None)` clears it.
    pub mute_for_events: Option<Option<i64>>,
    /// A mute ends after this many more distinct users; `Some(None)` clears it.
    pub mute_for_users: Option<Option<i64>>,
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
            Err(IndexError::Rejected(format!(
                "unsupported crash index URL {url:?}: use sqlite://PATH?mode=rwc or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            )))
        }
    }

    /// The dialect of an open connection.
    pub fn of_connection(connection: &sqlx::AnyConnection) -> Dialect {
        if connection.backend_name().eq_ignore_ascii_case("sqlite") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        }
    }

    /// `sql` as this database binds it fastest. sqlx asks SQLite for each parameter's name on
    /// every bind, and SQLite finds a name by walking the statement's list of names, so binding
    /// P numbered parameters costs P²/2 steps: a 1,000-parameter insert took 1.8 ms, and such
    /// batch statements were half of the index writer's time while a backlog drained. When
    /// the numbered parameters appear once each and in order (`$1`, `$2`, … `$N`, as the batch
    /// statements write them), SQLite's anonymous `?` mean the same and bind in P steps; any
    /// other statement, and every statement for Postgres, is returned unchanged.
    pub fn statement(self, sql: String) -> String {
        if self == Dialect::Postgres {
            return sql;
        }
        anonymous(&sql).unwrap_or(sql)
    }
}

/// `sql` with its numbered parameters (`$1` … `$N`, each once and in order) written as SQLite's
/// anonymous `?`, or `None` when they are not numbered so.
pub fn anonymous(sql: &str) -> Option<String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut next, mut copied, mut i, mut quoted) = (1u64, 0, 0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    if sql[i + 1..i + 1 + digits].parse() != Ok(next) {
                        return None;
                    }
                    out.push_str(&sql[copied..i]);
                    out.push('?');
                    next += 1;
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    Some(out)
}

/// The crash index.
pub struct CrashIndex {
    pool: AnyPool,
    /// Where session counts are written (`databases.rs`).
    sessions: AnyPool,
    dialect: Dialect,
    budget: PayloadBudget,
    /// One writer per node: while it writes, the next batch forms (group commit). Across
    /// nodes (Postgres), fingerprint inserts and group row locks order the writers.
    write: tokio::sync::Mutex<()>,
    /// Crashes waiting to be recorded by whoever holds `write` (group commit, see `record.rs`).
    queue: record::RecordQueue,
    /// The missing-symbol sets whose modules this node has seen stored (`finished.rs`).
    missing_sets: finished::StoredSets,
    /// What else happens in the transaction that records crashes (the alerts' firings).
    observer: std::sync::OnceLock<std::sync::Arc<dyn RecordObserver>>,
}

/// A crash a batch recorded, with its group as the batch left it (state after a regression
/// or a wake-up, counts including the batch): what alert rules look at.
pub struct RecordedCrash<'a> {
    /// The crash.
    pub crash: &'a CrashAttributes,
    /// What recording it did (new group, regression, wake-up).
    pub recorded: &'a Recorded,
    /// Its group after the batch.
    pub group: &'a Group,
    /// The first frames of its signature.
    pub top_frames: &'a [String],
}

/// Something that must be written in the same transaction as the crashes that caused it, so
/// that it is never lost nor written twice: alert firings (`crate::alerts`). Called once per
/// batch with the crashes recorded for the first time (a crash recorded again is left out).
#[async_trait::async_trait]
pub trait RecordObserver: Send + Sync {
    /// Writes what `crashes` cause, inside `tx`; returns whether it wrote anything that
    /// someone should act on once the transaction commits.
    async fn recorded(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        dialect: Dialect,
        crashes: &[RecordedCrash<'_>],
    ) -> Result<bool, IndexError>;

    /// The transaction in which `recorded` wrote something committed.
    fn committed(&self);
}

const GROUP_COLUMNS: &str = "id, project_id, signature, fault_class, first_seen, last_seen, event_count, user_count, \
     first_release, last_release, state, assignee, resolved_in, regressed, payloads_kept, payloads_dropped, \
     muted_until, mute_until_events, mute_until_users";

/// [`GROUP_COLUMNS`] of a table aliased `g`.
const GROUP_COLUMNS_OF_G: &str =
    "g.id, g.project_id, g.signature, g.fault_class, g.first_seen, g.last_seen, \
     g.event_count, g.user_count, g.first_release, g.last_release, g.state, g.assignee, \
     g.resolved_in, g.regressed, g.payloads_kept, g.payloads_dropped, g.muted_until, \
     g.mute_until_events, g.mute_until_users";

const CRASH_COLUMNS: &str =
    "id, project_id, received_at, product, release, platform, cpu, user_id, annotations, \
     fingerprint, signature, fault_class, group_id, state, payload_key, payload_expired_at, kind";

fn group_from(row: &AnyRow) -> Result<Group, sqlx::Error> {
    Ok(Group {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        signature: row.try_get("signature")?,
        fault_class: class_column(row)?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        event_count: row.try_get("event_count")?,
        user_count: row.try_get("user_count")?,
        first_release: row.try_get("first_release")?,
        last_release: row.try_get("last_release")?,
        state: state_column(row, "state")?,
        assignee: row.try_get("assignee")?,
        resolved_in: row.try_get("resolved_in")?,
        regressed: row.try_get::<i64, _>("regressed")? != 0,
        muted_until: row.try_get("muted_until")?,
        mute_until_events: row.try_get("mute_until_events")?,
        mute_until_users: row.try_get("mute_until_users")?,
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
            cpu: row.try_get("cpu")?,
            user_id: row.try_get("user_id")?,
            annotations: serde_json::from_str(&annotations).unwrap_or_default(),
            fingerprint: row.try_get("fingerprint")?,
            signature: row.try_get("signature")?,
            fault_class: class_column(row)?,
            kind: CrashKind::from_stored(&row.try_get::<String, _>("kind")?),
        },
        group_id: row.try_get("group_id")?,
        state: row.try_get("state")?,
        payload_key: row.try_get("payload_key")?,
        payload_expired_at: row.try_get("payload_expired_at")?,
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

    /// Rows after `(value, id)` in descending `(sort_column, id_column)` order (keyset paging).
    fn after(&mut self, sort_column: &str, id_column: &str, value: i64, id: Bind) {
        let (a, b, c) = (
            self.next(),
            format!("${}", self.binds.len() + 2),
            format!("${}", self.binds.len() + 3),
        );
        self.clauses.push(format!(
            "({sort_column} < {a} OR ({sort_column} = {b} AND {id_column} < {c}))"
        ));
        self.binds.extend([Bind::Int(value), Bind::Int(value), id]);
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
        // One connection for SQLite: its single writer and an in-memory database both need it.
        let connections = if dialect == Dialect::Sqlite { 1 } else { 16 };
        let pool = databases::connect(url, dialect, connections).await?;
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Dialect::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        let sessions = databases::open_sessions(url, dialect, &pool).await?;
        Ok(CrashIndex {
            pool,
            sessions,
            dialect,
            budget,
            write: tokio::sync::Mutex::new(()),
            queue: record::RecordQueue::default(),
            missing_sets: finished::StoredSets::default(),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Makes `observer` part of every transaction that records crashes (set once, at start).
    pub fn observe(&self, observer: std::sync::Arc<dyn RecordObserver>) {
        if self.observer.set(observer).is_err() {
            tracing::warn!("the crash index already has an observer; the second one is ignored");
        }
    }

    /// A transaction that will write: on SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a transaction never reads, then finds another connection wrote first.
    ///
    /// On SQLite the `BEGIN` runs in a task of its own: sqlx (0.8) checks a custom `BEGIN`
    /// with one more await after it ran, and a caller cancelled there would leave the
    /// connection inside a transaction no `Transaction` owns. It goes back to the pool holding
    /// the write lock, and the next `BEGIN IMMEDIATE` on it fails. The task always finishes;
    /// a transaction nobody waits for any more is dropped there and rolls back.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, IndexError> {
        Ok(match self.dialect {
            Dialect::Sqlite => {
                let pool = self.pool.clone();
                tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await })
                    .await
                    // Only a panic inside sqlx ends the task early.
                    .map_err(|_| sqlx::Error::WorkerCrashed)??
            }
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

    /// Where release health's session counts live: on SQLite a file of their own beside the
    /// index (its own writer), on Postgres the same database. A caller holding a connection of
    /// both pools takes the index's first: a crash transaction reads session counts (alert
    /// rules), so one holding a session connection while waiting for the index could deadlock.
    pub fn sessions_pool(&self) -> &AnyPool {
        &self.sessions
    }
}

/// `rows` comma-separated placeholder lists of `columns` each, numbered from `first`: with one
/// column, `$1, $2, …`; with more, `($1, $2), ($3, $4), …`.
pub(crate) fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + r * columns + c))
                .collect();
            if columns == 1 {
                cells.concat()
            } else {
                format!("({})", cells.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_statements_bind_in_order_when_they_can() {
        let sqlite = |sql: &str| Dialect::Sqlite.statement(sql.to_owned());
        assert_eq!(
            sqlite("UPDATE q SET at = $1 WHERE id IN ($2, $3, $10)"),
            "UPDATE q SET at = $1 WHERE id IN ($2, $3, $10)",
            "a gap: unchanged"
        );
        assert_eq!(
            sqlite("UPDATE q SET at = $1 WHERE id IN ($2, $3)"),
            "UPDATE q SET at = ? WHERE id IN (?, ?)"
        );
        let many = format!("INSERT INTO t VALUES {}", placeholders(12, 1, 1));
        assert_eq!(sqlite(&many).matches('?').count(), 12);
        assert!(!sqlite(&many).contains('$'));
        for kept in [
            "SELECT * FROM t WHERE a = $1 OR b = $1",
            "SELECT * FROM t WHERE a = $2 AND b = $1",
            "SELECT 'costs $1' AS label, a FROM t WHERE a = $2",
        ] {
            assert_eq!(sqlite(kept), kept);
        }
        assert_eq!(
            sqlite("SELECT '$9' AS label FROM t WHERE a = $1"),
            "SELECT '$9' AS label FROM t WHERE a = ?",
            "a dollar inside a string is text"
        );
        assert_eq!(sqlite("SELECT 1"), "SELECT 1");
        let postgres = "UPDATE q SET at = $1 WHERE id IN ($2, $3)";
        assert_eq!(Dialect::Postgres.statement(postgres.to_owned()), postgres);
    }
}
