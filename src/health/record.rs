//! Recording sessions with group commit: every request hands its items to one writer and waits;
//! the writer takes everything arriving within a few milliseconds of the first, applies it in
//! one transaction and answers them all
//! (an update acknowledged is committed; session updates outnumber crashes a hundred to one, so
//! they are never one transaction each).
//!
//! Applying is order-independent and idempotent: a session is counted once, when its `init`
//! update is first seen; its final status only moves up `FinalStatus`'s order (a session counted
//! `exited` that later says `crashed` is moved to `crashed`), so repeated and out-of-order updates
//! change nothing twice.

use std::collections::HashMap;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::session::{FinalStatus, SessionItems};
use super::statements::{multi_row, placeholders, statement_chunks, Bound, Script};
use super::users::RegisterFloors;

/// Requests one commit takes at most.
const MAX_BATCH: usize = 2_000;
/// How long the writer waits for more requests after the first of a batch (a group-commit
/// window, as Postgres's `commit_delay`): at 500 envelopes a second, one transaction takes
/// about ten of them instead of each paying for its own statements and wake-ups (5 ms, two or
/// three a batch, cost the server a third more CPU per update: docs/PERFORMANCE.md); a lone
/// update is acknowledged this much later. Not longer: an SDK's transport sends one envelope
/// at a time, so the window caps one process at 1/window envelopes with sessions a second (50
/// here). A batch of [`ENOUGH`] requests stops waiting.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);
/// Requests past which a batch amortizes its transaction well enough to stop gathering.
const ENOUGH: usize = 32;
/// Requests below which a batch's statements go to SQLite as scripts (see `Script::new`).
const SCRIPTED: usize = ENOUGH / 2;
/// Sessions looked up per query.
const LOOKUP_CHUNK: usize = 500;

/// One request's items, and where to say they are committed.
struct Job {
    project_id: i64,
    items: SessionItems,
    done: oneshot::Sender<Result<(), String>>,
}

/// The writer's door.
#[derive(Clone)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the writer on the current runtime.
    pub fn start(pool: AnyPool) -> Recorder {
        let (jobs, receiver) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(writer(pool, receiver));
        Recorder { jobs }
    }

    /// Records a request's items; returns once they are committed.
    pub async fn record(&self, project_id: i64, items: SessionItems) -> Result<(), String> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                project_id,
                items,
                done,
            })
            .await
            .map_err(|_| "the session writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the session writer has stopped".to_owned())?
    }
}

async fn writer(pool: AnyPool, mut jobs: mpsc::Receiver<Job>) {
    let mut floors = RegisterFloors::default();
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + GATHER;
        while batch.len() < ENOUGH {
            match tokio::time::timeout_at(until, jobs.recv()).await {
                Ok(Some(job)) => batch.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        // Whatever else is already waiting comes too.
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = apply(&pool, &batch, &mut floors)
            .await
            .map_err(|e| e.to_string());
        match &result {
            Ok(()) => floors.committed(),
            Err(_) => floors.rolled_back(),
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, requests = batch.len(), "could not record sessions");
        }
        metrics::counter!("faultline_session_batches_total").increment(1);
        for job in batch {
            let _ = job.done.send(result.clone());
        }
    }
}

/// A session's state as stored.
#[derive(Clone)]
struct State {
    release: String,
    environment: String,
    hour: i64,
    did: Option<String>,
    counted: bool,
    final_status: Option<FinalStatus>,
}

/// (project, release, environment, hour) → sessions, exited, errored, abnormal, crashed,
/// reported users.
type HourKey = (i64, String, String, i64);
/// (project, release, environment, day, did) → crashed.
type UserKey = (i64, String, String, i64, String);

/// What a batch changes, worked out in memory before one transaction writes it.
#[derive(Default)]
struct Changes {
    states: HashMap<(i64, String), State>,
    touched: Vec<(i64, String)>,
    hours: HashMap<HourKey, [i64; 6]>,
    users: HashMap<UserKey, bool>,
}

fn hour_of(t: i64) -> i64 {
    t - t.rem_euclid(3600)
}

fn day_of(t: i64) -> i64 {
    t - t.rem_euclid(86_400)
}

fn status_slot(status: FinalStatus) -> usize {
    match status {
        FinalStatus::Exited => 1,
        FinalStatus::Errored => 2,
        FinalStatus::Abnormal => 3,
        FinalStatus::Crashed => 4,
    }
}

impl Changes {
    fn add(&mut self, key: HourKey, slot: usize, n: i64) {
        self.hours.entry(key).or_default()[slot] += n;
    }

    fn user(&mut self, key: UserKey, crashed: bool) {
        let seen = self.users.entry(key).or_default();
        *seen |= crashed;
    }

    /// One request's items against the states known so far.
    fn apply(&mut self, project: i64, items: &SessionItems) {
        for u in &items.updates {
            let key = (project, u.sid.clone());
            let state = self.states.entry(key.clone()).or_insert_with(|| State {
                release: u.release.clone(),
                environment: u.environment.clone(),
                hour: hour_of(u.started),
                did: u.did.clone(),
                counted: false,
                final_status: None,
            });
            let (hour_key, was) = (
                (
                    project,
                    state.release.clone(),
                    state.environment.clone(),
                    state.hour,
                ),
                state.final_status,
            );
            let day = day_of(state.hour);
            let mut user_crashed = None;
            let mut deltas: Vec<(usize, i64)> = Vec::new();
            if u.init && !state.counted {
                state.counted = true;
                deltas.push((0, 1));
                user_crashed = Some(false);
            }
            if let Some(status) = u.status.filter(|s| was.is_none_or(|w| *s > w)) {
                if let Some(was) = was {
                    deltas.push((status_slot(was), -1));
                }
                deltas.push((status_slot(status), 1));
                state.final_status = Some(status);
                if status == FinalStatus::Crashed {
                    user_crashed = Some(true);
                }
            }
            let did = state.did.clone().or_else(|| u.did.clone());
            state.did = did.clone();
            if deltas.is_empty() && user_crashed.is_none() {
                continue;
            }
            let (release, environment) = (state.release.clone(), state.environment.clone());
            self.touched.push(key);
            for (slot, n) in deltas {
                self.add(hour_key.clone(), slot, n);
            }
            if let (Some(crashed), Some(did)) = (user_crashed, did) {
                self.user((project, release, environment, day, did), crashed);
            }
        }
        for b in &items.buckets {
            let key = (
                project,
                b.release.clone(),
                b.environment.clone(),
                hour_of(b.started),
            );
            let total = b.exited + b.errored + b.abnormal + b.crashed;
            for (slot, n) in [
                (0, total),
                (1, b.exited),
                (2, b.errored),
                (3, b.abnormal),
                (4, b.crashed),
            ] {
                self.add(key.clone(), slot, n);
            }
            if let Some(did) = &b.did {
                let user = (
                    project,
                    b.release.clone(),
                    b.environment.clone(),
                    day_of(b.started),
                    did.clone(),
                );
                self.user(user, b.crashed > 0);
            }
        }
        for row in &items.usage {
            let key = (
                project,
                row.release.clone(),
                row.environment.clone(),
                hour_of(row.hour),
            );
            self.add(key.clone(), 0, row.sessions);
            self.add(key, 5, row.users);
        }
    }
}

/// Applies a batch in one transaction: the sessions' stored states read, the batch worked out
/// in memory, its user sets locked, then its writes sent as two scripts (see `Script`: for a
/// small batch on SQLite, six round trips to the database's thread in all).
async fn apply(
    pool: &AnyPool,
    batch: &[Job],
    floors: &mut RegisterFloors,
) -> Result<(), sqlx::Error> {
    let mut changes = Changes::default();
    let together = batch.len() < SCRIPTED;
    let mut tx = pool.begin().await?;
    let held = std::time::Instant::now();
    load_states(&mut tx, batch, &mut changes.states, together).await?;
    for job in batch {
        changes.apply(job.project_id, &job.items);
    }
    changes.touched.sort();
    changes.touched.dedup();
    let sets = super::users::lock(&mut tx, &changes.users, together).await?;
    let mut writes = Script::new(together);
    write_states(&changes, crate::clock::now(), &mut writes);
    write_hours(&changes, &mut writes);
    sets.add_exactly(&mut writes);
    let added = writes.run(&mut tx).await?;
    let mut saves = Script::new(together);
    let users = sets.settle(&mut tx, &added, floors, &mut saves).await?;
    release_totals(&changes, &users, &mut saves);
    saves.run(&mut tx).await?;
    tx.commit().await?;
    // How long the batch held its transaction (on SQLite, the session file's one connection).
    metrics::histogram!("faultline_session_transaction_seconds")
        .record(held.elapsed().as_secs_f64());
    Ok(())
}

/// The touched sessions' states (keys are unique within each statement, as Postgres's
/// `ON CONFLICT` requires).
fn write_states(changes: &Changes, now: i64, script: &mut Script) {
    for chunk in statement_chunks(&changes.touched) {
        let sql = multi_row(
            "INSERT INTO session_states (project_id, sid, release, environment, hour, did, \
             counted, final_status, updated_at) VALUES ",
            9,
            chunk.len(),
            " ON CONFLICT (project_id, sid) DO UPDATE SET did = excluded.did, \
             counted = excluded.counted, final_status = excluded.final_status, \
             updated_at = excluded.updated_at",
        );
        let mut binds = Vec::with_capacity(chunk.len() * 9);
        for key in chunk {
            let state = &changes.states[key];
            binds.extend([
                Bound::Int(key.0),
                Bound::from(key.1.as_str()),
                Bound::from(state.release.as_str()),
                Bound::from(state.environment.as_str()),
                Bound::Int(state.hour),
                Bound::from(state.did.clone()),
                Bound::Int(i64::from(state.counted)),
                Bound::from(state.final_status.map(FinalStatus::as_str)),
                Bound::Int(now),
            ]);
        }
        script.push(sql, binds);
    }
}

/// The batch's counts added to their hours.
fn write_hours(changes: &Changes, script: &mut Script) {
    let hours: Vec<_> = changes.hours.iter().collect();
    for chunk in statement_chunks(&hours) {
        let sql = multi_row(
            "INSERT INTO session_hours (project_id, release, environment, hour, sessions, exited, \
             errored, abnormal, crashed, reported_users) VALUES ",
            10,
            chunk.len(),
            " ON CONFLICT (project_id, release, environment, hour) DO UPDATE SET \
             sessions = session_hours.sessions + excluded.sessions, \
             exited = session_hours.exited + excluded.exited, \
             errored = session_hours.errored + excluded.errored, \
             abnormal = session_hours.abnormal + excluded.abnormal, \
             crashed = session_hours.crashed + excluded.crashed, \
             reported_users = session_hours.reported_users + excluded.reported_users",
        );
        let mut binds = Vec::with_capacity(chunk.len() * 10);
        for ((project, release, environment, hour), d) in chunk {
            binds.extend([
                Bound::Int(*project),
                Bound::from(release.as_str()),
                Bound::from(environment.as_str()),
                Bound::Int(*hour),
            ]);
            binds.extend(d.iter().map(|n| Bound::Int(*n)));
        }
        script.push(sql, binds);
    }
}

/// Adds a batch to each release's totals: sessions and statuses from the hour deltas, users
/// as the release's all-time user set moved (`users.rs`).
fn release_totals(
    changes: &Changes,
    users: &super::users::ReleaseUserChanges,
    script: &mut Script,
) {
    let mut totals: HashMap<(i64, &str), [i64; 8]> = HashMap::new();
    for ((project, release, _, _), d) in &changes.hours {
        let t = totals.entry((*project, release.as_str())).or_default();
        for i in 0..5 {
            t[i] += d[i];
        }
        t[5] = t[5].max(d[5]);
    }
    for ((project, release), (new, crashed)) in users {
        let t = totals.entry((*project, release.as_str())).or_default();
        t[6] += new;
        t[7] += crashed;
    }
    for ((project, release), t) in totals {
        script.push(
            "INSERT INTO session_releases (project_id, release, sessions, crashed, errored, \
             abnormal, ended, reported_users, users, crashed_users) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10) ON CONFLICT (project_id, release) DO UPDATE SET \
             sessions = session_releases.sessions + excluded.sessions, \
             crashed = session_releases.crashed + excluded.crashed, \
             errored = session_releases.errored + excluded.errored, \
             abnormal = session_releases.abnormal + excluded.abnormal, \
             ended = session_releases.ended + excluded.ended, \
             reported_users = CASE WHEN excluded.reported_users > session_releases.reported_users \
                THEN excluded.reported_users ELSE session_releases.reported_users END, \
             users = session_releases.users + excluded.users, \
             crashed_users = session_releases.crashed_users + excluded.crashed_users"
                .to_owned(),
            vec![
                Bound::Int(project),
                Bound::from(release),
                Bound::Int(t[0]),
                Bound::Int(t[4]),
                Bound::Int(t[2]),
                Bound::Int(t[3]),
                Bound::Int(t[1] + t[2] + t[3] + t[4]),
                Bound::Int(t[5]),
                Bound::Int(t[6]),
                Bound::Int(t[7]),
            ],
        );
    }
}

/// The stored states of the sessions a batch names.
async fn load_states(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    batch: &[Job],
    states: &mut HashMap<(i64, String), State>,
    together: bool,
) -> Result<(), sqlx::Error> {
    let mut wanted: HashMap<i64, Vec<&str>> = HashMap::new();
    for job in batch {
        let sids = wanted.entry(job.project_id).or_default();
        sids.extend(job.items.updates.iter().map(|u| u.sid.as_str()));
    }
    let mut script = Script::new(together);
    for (project, mut sids) in wanted {
        sids.sort_unstable();
        sids.dedup();
        for chunk in sids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT project_id, sid, release, environment, hour, did, counted, final_status \
                 FROM session_states WHERE project_id = $1 AND sid IN ({})",
                placeholders(2, chunk.len())
            );
            let mut binds = vec![Bound::Int(project)];
            binds.extend(chunk.iter().map(|sid| Bound::from(*sid)));
            script.push(sql, binds);
        }
    }
    for row in script.run(tx).await? {
        let status: Option<String> = row.try_get("final_status")?;
        let counted: i64 = row.try_get("counted")?;
        states.insert(
            (row.try_get("project_id")?, row.try_get("sid")?),
            State {
                release: row.try_get("release")?,
                environment: row.try_get("environment")?,
                hour: row.try_get("hour")?,
                did: row.try_get("did")?,
                counted: counted != 0,
                final_status: status.as_deref().and_then(FinalStatus::from_stored),
            },
        );
    }
    Ok(())
}
