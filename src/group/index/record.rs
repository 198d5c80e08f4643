//! Recording crashes, with group commit.
//!
//! Every statement is a round trip to the database (for SQLite, to sqlx's connection thread),
//! and the index has one writer, so recording one crash per transaction caps the whole server at
//! what that writer can do serially. Instead, callers queue their crash and whoever holds the
//! writer lock records everything queued, in one transaction with a fixed number of statements
//! per batch: one read (is each crash already recorded, its fingerprint's group, that group's
//! payloads this hour, whether it has seen this user), then multi-row inserts and one update
//! per touched group and hour. Decisions are made in memory, crash by crash in queue order, so
//! a batch gives exactly what recording its crashes one after another would.
//!
//! The ingest queue's finished rows ride along: a worker marks its recorded crashes processed
//! through the same queue of work ([`CrashIndex::finish`]), so under load they cost no commit
//! of their own, and when the index is idle the finisher writes them itself.
//!
//! If a batch fails, its crashes are recorded one by one so that each caller gets its own
//! crash's error, not a neighbour's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use sqlx::Row;
use tokio::sync::oneshot;

use super::finished::write_finished;
use super::{
    group_from, placeholders, version, CrashAttributes, CrashIndex, Dialect, FinishedCrash, Group,
    GroupState, IndexError, NewCrash, Recorded, RecordedCrash, GROUP_COLUMNS_OF_G,
};

/// Most crashes recorded in one transaction (also bounds the distinct batch statements the
/// connection caches).
const MAX_BATCH: usize = 64;

/// Work waiting for the writer, and where its caller waits for the outcome.
enum Waiting {
    /// A crash to record.
    Record(Box<NewCrash>, oneshot::Sender<Result<Recorded, IndexError>>),
    /// Queue rows to mark processed.
    Finish(Vec<FinishedCrash>, oneshot::Sender<Result<(), IndexError>>),
}

impl Waiting {
    /// Crashes this counts for against [`MAX_BATCH`].
    fn weight(&self) -> usize {
        match self {
            Waiting::Record(..) => 1,
            Waiting::Finish(..) => 0,
        }
    }
}

/// Crashes waiting for the writer.
#[derive(Default)]
pub(super) struct RecordQueue {
    waiting: Mutex<Vec<Waiting>>,
}

impl CrashIndex {
    /// Records one crash; see the module comment of `index`. Recording the same crash ID again
    /// changes nothing and returns what the first recording decided, so a crash processed twice
    /// (after a restart) is indexed once.
    pub async fn record(&self, crash: &NewCrash) -> Result<Recorded, IndexError> {
        loop {
            let (done, result) = oneshot::channel();
            if let Some(recorded) = self
                .join_batch(Waiting::Record(Box::new(crash.clone()), done), result)
                .await
            {
                return recorded;
            }
        }
    }

    /// Marks queue rows processed, remembering which modules each crash lacked symbols for:
    /// in the next batch's transaction, or in one of its own when nothing else is waiting.
    pub async fn finish(&self, finished: Vec<FinishedCrash>) -> Result<(), IndexError> {
        loop {
            let (done, result) = oneshot::channel();
            if let Some(outcome) = self
                .join_batch(Waiting::Finish(finished.clone(), done), result)
                .await
            {
                return outcome;
            }
        }
    }

    /// Queues `work`; either the current writer writes it with its batch, or this caller
    /// becomes the writer and writes everything queued so far. `None` when the writer that
    /// took it was cancelled mid-batch (its transaction rolled back): queue it again.
    async fn join_batch<T>(&self, work: Waiting, mut result: oneshot::Receiver<T>) -> Option<T> {
        self.queue
            .waiting
            .lock()
            .expect("the record queue is never poisoned")
            .push(work);
        tokio::select! {
            biased;
            outcome = &mut result => outcome.ok(),
            _writer = self.write.lock() => {
                // Write batches until this caller's work is written (the queue is in arrival
                // order, so that is bounded), then let the next waiter write.
                loop {
                    match result.try_recv() {
                        Ok(outcome) => break Some(outcome),
                        Err(oneshot::error::TryRecvError::Closed) => break None,
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                    let batch: Vec<_> = {
                        let mut waiting = self.queue.waiting.lock().expect("never poisoned");
                        let mut crashes = 0;
                        let take = waiting
                            .iter()
                            .take_while(|w| {
                                crashes += w.weight();
                                crashes <= MAX_BATCH
                            })
                            .count()
                            .max(1);
                        let take = take.min(waiting.len());
                        waiting.drain(..take).collect()
                    };
                    if batch.is_empty() {
                        // Not queued and not answered: only a cancelled writer can have
                        // dropped it, and then the answer is `Closed`.
                        break result.await.ok();
                    }
                    self.write_batch(batch).await;
                }
            }
        }
    }

    async fn write_batch(&self, batch: Vec<Waiting>) {
        let mut crashes = Vec::new();
        let mut finished = Vec::new();
        for work in &batch {
            match work {
                Waiting::Record(crash, _) => crashes.push(crash.as_ref()),
                Waiting::Finish(rows, _) => finished.extend(rows.iter()),
            }
        }
        if !crashes.is_empty() {
            metrics::histogram!("faultline_index_batch_crashes").record(crashes.len() as f64);
        }
        let started = std::time::Instant::now();
        let recorded = self.record_all(&crashes, &finished).await;
        metrics::histogram!("faultline_index_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        match recorded {
            Ok(results) => {
                let mut results = results.into_iter();
                for work in batch {
                    match work {
                        Waiting::Record(_, done) => {
                            let _ = done.send(Ok(results.next().expect("one result per crash")));
                        }
                        Waiting::Finish(_, done) => {
                            let _ = done.send(Ok(()));
                        }
                    }
                }
            }
            Err(e) if batch.len() == 1 => match batch.into_iter().next().expect("one") {
                Waiting::Record(_, done) => {
                    let _ = done.send(Err(e));
                }
                Waiting::Finish(_, done) => {
                    let _ = done.send(Err(e));
                }
            },
            // Each written alone, so each caller gets its own error, not a neighbour's.
            Err(_) => {
                for work in batch {
                    match work {
                        Waiting::Record(crash, done) => {
                            let result = self
                                .record_all(&[crash.as_ref()], &[])
                                .await
                                .map(|mut r| r.remove(0));
                            let _ = done.send(result);
                        }
                        Waiting::Finish(rows, done) => {
                            let rows: Vec<&FinishedCrash> = rows.iter().collect();
                            let _ = done.send(self.record_all(&[], &rows).await.map(|_| ()));
                        }
                    }
                }
            }
        }
    }

    /// Records `crashes` in order, in one transaction; when another writer (another node)
    /// got in the way (a deadlock, the same crash recorded at the same time), tries again: the
    /// next attempt sees what that writer committed.
    async fn record_all(
        &self,
        crashes: &[&NewCrash],
        finished: &[&FinishedCrash],
    ) -> Result<Vec<Recorded>, IndexError> {
        let mut attempt = 0;
        loop {
            match self.record_all_once(crashes, finished).await {
                Err(e) if attempt < 4 && super::lost_a_race(&e) => {
                    attempt += 1;
                    metrics::counter!("faultline_index_write_retries_total").increment(1);
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                }
                result => return result,
            }
        }
    }

    async fn record_all_once(
        &self,
        crashes: &[&NewCrash],
        finished: &[&FinishedCrash],
    ) -> Result<Vec<Recorded>, IndexError> {
        let mut tx = self.begin_write().await?;
        if crashes.is_empty() {
            let sets = write_finished(&mut tx, finished, &self.missing_sets).await?;
            tx.commit().await?;
            self.missing_sets.remember(sets);
            return Ok(Vec::new());
        }
        let replacing: BTreeSet<&str> = crashes
            .iter()
            .filter(|c| c.replaces_earlier)
            .map(|c| c.attributes.id.as_str())
            .collect();
        for crash_id in replacing {
            self.forget(&mut tx, crash_id).await?;
        }
        let mut known = read_known(&mut tx, crashes).await?;
        // Groups for new fingerprints, created in one fixed order (so writers on other nodes
        // cannot deadlock on them); a writer that loses the race joins the winner's group.
        let mut new_fingerprints: Vec<&NewCrash> = crashes
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.group.is_none() && k.recorded.is_none())
            .map(|(c, _)| *c)
            .collect();
        new_fingerprints.sort_by(|a, b| {
            (a.attributes.project_id, &a.attributes.fingerprint)
                .cmp(&(b.attributes.project_id, &b.attributes.fingerprint))
        });
        new_fingerprints.dedup_by(|a, b| {
            (a.attributes.project_id, &a.attributes.fingerprint)
                == (b.attributes.project_id, &b.attributes.fingerprint)
        });
        let mut created = HashSet::new();
        for crash in &new_fingerprints {
            let (id, new) = create_group(&mut tx, crash).await?;
            if new {
                created.insert(id);
            }
        }
        if self.dialect == super::Dialect::Postgres {
            // Other nodes write these groups too: lock them (in ID order), then read the batch
            // again, so its decisions start from what is committed now.
            let mut ids: Vec<i64> = known
                .iter()
                .filter_map(|k| k.group.as_ref().map(|g| g.id))
                .chain(created.iter().copied())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                lock_groups(&mut tx, &ids).await?;
            }
            if !ids.is_empty() || !new_fingerprints.is_empty() {
                known = read_known(&mut tx, crashes).await?;
            }
        } else if !new_fingerprints.is_empty() {
            known = read_known(&mut tx, crashes).await?;
        }
        let mut state = BatchState {
            created,
            ..BatchState::default()
        };
        let mut results = Vec::with_capacity(crashes.len());
        for (crash, known) in crashes.iter().zip(&known) {
            let recorded = state.decide(crash, known, self.budget)?;
            results.push(recorded);
        }
        state.write(&mut tx).await?;
        let observed = match self.observer.get() {
            Some(observer) => {
                let groups = state.groups_after();
                let recorded: Vec<RecordedCrash<'_>> = state
                    .inserts
                    .iter()
                    .map(|(crash, group_id, _)| RecordedCrash {
                        crash: &crash.attributes,
                        recorded: &state.recorded[&crash.attributes.id],
                        group: &groups[group_id],
                        top_frames: &crash.top_frames,
                    })
                    .collect();
                let wrote = observer.recorded(&mut tx, self.dialect, &recorded).await?;
                wrote.then_some(observer)
            }
            None => None,
        };
        let sets = write_finished(&mut tx, finished, &self.missing_sets).await?;
        tx.commit().await?;
        self.missing_sets.remember(sets);
        if let Some(observer) = observed {
            observer.committed();
        }
        Ok(results)
    }
}

/// Locks groups' rows until the transaction ends (`ids` sorted, so lockers never deadlock).
pub(super) async fn lock_groups(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ids: &[i64],
) -> Result<(), IndexError> {
    let sql = format!(
        "SELECT id FROM crash_groups WHERE id IN ({}) ORDER BY id FOR UPDATE",
        (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut **tx).await?;
    Ok(())
}

/// What the database said about one crash of the batch before the batch.
struct Known {
    /// The group of an already recorded crash, and whether its payload was kept.
    recorded: Option<(i64, bool)>,
    /// The fingerprint's group.
    group: Option<Group>,
    /// That group's payloads in the crash's hour (`None`: no row for that hour yet).
    hour_payloads: Option<i64>,
    /// Whether that group has seen this crash's user.
    user_seen: bool,
}

/// Regression: the group is resolved, and this crash is from a newer release than the fix
/// (or the fix named no release).
fn regresses(group: &Group, release: Option<&String>) -> bool {
    group.state == GroupState::Resolved
        && match (&group.resolved_in, release) {
            (Some(fixed), Some(release)) => version::is_newer(release, fixed),
            (None, _) => true,
            (Some(_), None) => false,
        }
}

/// The group's releases and times widened to include the crash.
fn widen(group: &mut Group, a: &CrashAttributes) {
    group.first_release = version::earliest(&group.first_release, &a.release);
    group.last_release = version::latest(&group.last_release, &a.release);
    group.first_seen = group.first_seen.min(a.received_at);
    group.last_seen = group.last_seen.max(a.received_at);
}

/// A mute that ends by itself: its date passed, or this crash reaches its crash or user count.
fn mute_ends(touched: &TouchedGroup, received_at: i64, new_user: bool) -> bool {
    let group = &touched.group;
    group.state == GroupState::Muted
        && (group.muted_until.is_some_and(|until| received_at >= until)
            || group
                .mute_until_events
                .is_some_and(|n| group.event_count + touched.events + 1 >= n)
            || group
                .mute_until_users
                .is_some_and(|n| group.user_count + touched.new_users + i64::from(new_user) >= n))
}

/// Counts the crash into its group and hour.
fn count(touched: &mut TouchedGroup, hour: &mut TouchedHour, keep_payload: bool, new_user: bool) {
    touched.events += 1;
    touched.new_users += i64::from(new_user);
    if keep_payload {
        touched.kept += 1;
        touched.group.payloads_kept += 1;
    } else {
        touched.dropped += 1;
    }
    hour.events_added += 1;
    hour.payloads_added += i64::from(keep_payload);
    hour.payloads += i64::from(keep_payload);
}

fn hour_of(received_at: i64) -> i64 {
    received_at - received_at.rem_euclid(3600)
}

/// One read for the whole batch.
async fn read_known(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    crashes: &[&NewCrash],
) -> Result<Vec<Known>, IndexError> {
    let rows: Vec<String> = (0..crashes.len())
        .map(|i| {
            let p = 6 * i;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            )
        })
        .collect();
    let sql = format!(
        "WITH batch (i, crash_id, project_id, fingerprint, hour, user_id) AS (VALUES {}) \
         SELECT batch.i AS i, \
         (SELECT group_id FROM crashes WHERE id = batch.crash_id) AS recorded_group, \
         (SELECT CASE WHEN payload_key IS NULL THEN 0 ELSE 1 END FROM crashes WHERE id = batch.crash_id) AS recorded_kept, \
         (SELECT payloads FROM group_hours WHERE group_id = g.id AND hour = batch.hour) AS hour_payloads, \
         (SELECT 1 FROM group_users WHERE group_id = g.id AND user_id = batch.user_id) AS user_seen, \
         {GROUP_COLUMNS_OF_G} \
         FROM batch \
         LEFT JOIN group_fingerprints f ON f.project_id = batch.project_id AND f.fingerprint = batch.fingerprint \
         LEFT JOIN crash_groups g ON g.id = f.group_id",
        rows.join(", ")
    );
    let sql = Dialect::of_connection(tx).statement(sql);
    let mut query = sqlx::query(&sql);
    for (i, crash) in crashes.iter().enumerate() {
        let a = &crash.attributes;
        query = query
            .bind(i as i64)
            .bind(a.id.as_str())
            .bind(a.project_id)
            .bind(a.fingerprint.as_str())
            .bind(hour_of(a.received_at))
            .bind(a.user_id.as_deref());
    }
    let rows = query.fetch_all(&mut **tx).await?;
    let mut known: Vec<Option<Known>> = (0..crashes.len()).map(|_| None).collect();
    for row in rows {
        let i: i64 = row.try_get("i")?;
        let recorded = match row.try_get::<Option<i64>, _>("recorded_group")? {
            Some(group) => Some((
                group,
                row.try_get::<Option<i64>, _>("recorded_kept")? == Some(1),
            )),
            None => None,
        };
        let group = match row.try_get::<Option<i64>, _>("id")? {
            Some(_) => Some(group_from(&row)?),
            None => None,
        };
        let slot = known
            .get_mut(i as usize)
            .ok_or_else(|| IndexError::Broken(format!("batch read returned row {i}")))?;
        *slot = Some(Known {
            recorded,
            group,
            hour_payloads: row.try_get("hour_payloads")?,
            user_seen: row.try_get::<Option<i64>, _>("user_seen")?.is_some(),
        });
    }
    known
        .into_iter()
        .enumerate()
        .map(|(i, k)| k.ok_or_else(|| IndexError::Broken(format!("batch read lost crash {i}"))))
        .collect()
}

/// A group as the batch has changed it so far.
struct TouchedGroup {
    group: Group,
    events: i64,
    new_users: i64,
    kept: i64,
    dropped: i64,
    reopened: bool,
    /// A crash of this batch ended its mute.
    woke: bool,
}

/// One group's hour as the batch has changed it so far.
struct TouchedHour {
    /// Payloads kept in that hour, including this batch's.
    payloads: i64,
    events_added: i64,
    payloads_added: i64,
}

/// The batch's decisions so far, and the rows to write.
#[derive(Default)]
struct BatchState<'c> {
    groups: HashMap<i64, TouchedGroup>,
    /// Group order of first touch, so updates are written in a stable order.
    group_order: Vec<i64>,
    by_fingerprint: HashMap<(i64, String), i64>,
    hours: HashMap<(i64, i64), TouchedHour>,
    hour_order: Vec<(i64, i64)>,
    users: HashSet<(i64, String)>,
    new_users: Vec<(i64, String)>,
    recorded: HashMap<String, Recorded>,
    /// Groups this batch created, until their first crash is decided.
    created: HashSet<i64>,
    /// Crashes to insert, with the payload key if kept.
    inserts: Vec<(&'c NewCrash, i64, Option<String>)>,
}

impl<'c> BatchState<'c> {
    /// Decides what recording `crash` does, given what the batch did before it.
    fn decide(
        &mut self,
        crash: &'c NewCrash,
        known: &Known,
        budget: super::PayloadBudget,
    ) -> Result<Recorded, IndexError> {
        let a = &crash.attributes;
        if let Some(recorded) = self.decided_before(&a.id, known) {
            return Ok(recorded);
        }
        let (group_id, new_group) = self.group_for(a, known)?;
        let new_user = self.note_user(group_id, a.user_id.as_ref(), known.user_seen);
        let touched = self.groups.get_mut(&group_id).expect("touched above");
        let hour = hour_of(a.received_at);
        let hour_state = self.hours.entry((group_id, hour)).or_insert_with(|| {
            self.hour_order.push((group_id, hour));
            TouchedHour {
                payloads: known.hour_payloads.unwrap_or(0),
                events_added: 0,
                payloads_added: 0,
            }
        });
        let keep_payload = touched.group.payloads_kept < budget.per_new_group
            || hour_state.payloads < budget.per_group_hour;
        let regressed = regresses(&touched.group, a.release.as_ref());
        widen(&mut touched.group, a);
        if regressed {
            touched.group.state = GroupState::Open;
            touched.group.regressed = true;
            touched.reopened = true;
        }
        let woke = mute_ends(touched, a.received_at, new_user);
        if woke {
            let group = &mut touched.group;
            group.state = GroupState::Open;
            group.muted_until = None;
            group.mute_until_events = None;
            group.mute_until_users = None;
            touched.woke = true;
        }
        count(touched, hour_state, keep_payload, new_user);
        let recorded = Recorded {
            group_id,
            new_group,
            keep_payload,
            regressed,
            woke,
        };
        self.recorded.insert(a.id.clone(), recorded.clone());
        self.inserts.push((
            crash,
            group_id,
            keep_payload.then(|| crash.payload_key.clone()),
        ));
        Ok(recorded)
    }

    /// A crash this batch or an earlier one already recorded: the same crash twice in one
    /// batch changes nothing the second time; one recorded before keeps its decision.
    fn decided_before(&self, id: &str, known: &Known) -> Option<Recorded> {
        if let Some(previous) = self.recorded.get(id) {
            return Some(Recorded {
                new_group: false,
                regressed: false,
                woke: false,
                ..previous.clone()
            });
        }
        let (group_id, keep_payload) = known.recorded?;
        Some(Recorded {
            group_id,
            new_group: false,
            keep_payload,
            regressed: false,
            woke: false,
        })
    }

    /// The group of the crash's fingerprint (taken into the batch's touched groups the first
    /// time), and whether this batch created it.
    fn group_for(&mut self, a: &CrashAttributes, known: &Known) -> Result<(i64, bool), IndexError> {
        if let Some(id) = self
            .by_fingerprint
            .get(&(a.project_id, a.fingerprint.clone()))
        {
            return Ok((*id, false));
        }
        let group = known.group.clone().ok_or_else(|| {
            IndexError::Broken(format!(
                "no group for fingerprint {} after creating it",
                a.fingerprint
            ))
        })?;
        let new_group = self.created.remove(&group.id);
        let id = group.id;
        self.by_fingerprint
            .insert((a.project_id, a.fingerprint.clone()), id);
        if !self.groups.contains_key(&id) {
            self.group_order.push(id);
            self.groups.insert(
                id,
                TouchedGroup {
                    group,
                    events: 0,
                    new_users: 0,
                    kept: 0,
                    dropped: 0,
                    reopened: false,
                    woke: false,
                },
            );
        }
        Ok((id, new_group))
    }

    /// Whether `user` is new to the group (then remembered, to be written with the batch).
    fn note_user(&mut self, group_id: i64, user: Option<&String>, seen_before: bool) -> bool {
        let Some(user) = user else {
            return false;
        };
        let key = (group_id, user.clone());
        if seen_before || self.users.contains(&key) {
            return false;
        }
        self.users.insert(key.clone());
        self.new_users.push(key);
        true
    }

    /// Every touched group as the batch leaves it (counts included).
    fn groups_after(&self) -> HashMap<i64, Group> {
        self.groups
            .iter()
            .map(|(id, t)| {
                let mut group = t.group.clone();
                group.event_count += t.events;
                group.user_count += t.new_users;
                (*id, group)
            })
            .collect()
    }

    /// Writes the batch: crashes, annotations, new users, then each touched group and hour.
    async fn write(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), IndexError> {
        self.write_crashes(tx).await?;
        self.write_annotations(tx).await?;
        self.write_new_users(tx).await?;
        self.write_groups(tx).await?;
        self.write_hours(tx).await
    }

    /// The crash rows, 32 to a statement.
    async fn write_crashes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), IndexError> {
        for chunk in self.inserts.chunks(32) {
            let sql = format!(
                "INSERT INTO crashes (id, project_id, received_at, product, release, platform, \
                 cpu, user_id, annotations, fingerprint, signature, fault_class, group_id, state, \
                 payload_key, kind, facts) VALUES {}",
                placeholders(chunk.len(), 17, 1)
            );
            let sql = Dialect::of_connection(tx).statement(sql);
            let mut insert = sqlx::query(&sql);
            for (crash, group_id, payload_key) in chunk {
                let a = &crash.attributes;
                insert = insert
                    .bind(a.id.as_str())
                    .bind(a.project_id)
                    .bind(a.received_at)
                    .bind(a.product.as_deref())
                    .bind(a.release.as_deref())
                    .bind(a.platform.as_deref())
                    .bind(a.cpu.as_deref())
                    .bind(a.user_id.as_deref())
                    .bind(serde_json::to_string(&a.annotations).expect("annotations serialize"))
                    .bind(a.fingerprint.as_str())
                    .bind(a.signature.as_str())
                    .bind(a.fault_class.as_str())
                    .bind(*group_id)
                    .bind("processed")
                    .bind(payload_key.as_deref())
                    .bind(a.kind.as_str())
                    .bind(
                        (!crash.facts.is_empty())
                            .then(|| serde_json::to_string(&crash.facts).expect("facts serialize")),
                    );
            }
            insert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Every crash's annotations, 100 to a statement.
    async fn write_annotations(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), IndexError> {
        let annotations: Vec<(&str, &str, &str)> = self
            .inserts
            .iter()
            .flat_map(|(crash, _, _)| {
                let id = crash.attributes.id.as_str();
                crash
                    .attributes
                    .annotations
                    .iter()
                    .map(move |(name, value)| (id, name.as_str(), value.as_str()))
            })
            .collect();
        for chunk in annotations.chunks(100) {
            let sql = format!(
                "INSERT INTO crash_annotations (crash_id, name, value) VALUES {}",
                placeholders(chunk.len(), 3, 1)
            );
            let sql = Dialect::of_connection(tx).statement(sql);
            let mut insert = sqlx::query(&sql);
            for (id, name, value) in chunk {
                insert = insert.bind(*id).bind(*name).bind(*value);
            }
            insert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The groups' new distinct users.
    async fn write_new_users(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), IndexError> {
        for chunk in self.new_users.chunks(100) {
            let sql = format!(
                "INSERT INTO group_users (group_id, user_id) VALUES {}",
                placeholders(chunk.len(), 2, 1)
            );
            let sql = Dialect::of_connection(tx).statement(sql);
            let mut insert = sqlx::query(&sql);
            for (group_id, user) in chunk {
                insert = insert.bind(*group_id).bind(user.as_str());
            }
            insert.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Every touched group in one statement (50 to a chunk): counts added, times and releases widened, regressions and ended mutes opened.
    async fn write_groups(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), IndexError> {
        for chunk in self.group_order.chunks(50) {
            let sql = format!(
                "WITH touched (id, events, new_users, first_seen, last_seen, first_release, \
                 last_release, reopened, kept, dropped, woke) AS (VALUES {}) \
                 UPDATE crash_groups SET event_count = event_count + touched.events, \
                 user_count = user_count + touched.new_users, \
                 first_seen = CASE WHEN touched.first_seen < crash_groups.first_seen \
                   THEN touched.first_seen ELSE crash_groups.first_seen END, \
                 last_seen = CASE WHEN touched.last_seen > crash_groups.last_seen \
                   THEN touched.last_seen ELSE crash_groups.last_seen END, \
                 first_release = touched.first_release, last_release = touched.last_release, \
                 state = CASE WHEN touched.reopened = 1 OR touched.woke = 1 THEN 'open' \
                   ELSE state END, \
                 regressed = CASE WHEN touched.reopened = 1 THEN 1 ELSE regressed END, \
                 muted_until = CASE WHEN touched.woke = 1 THEN NULL ELSE muted_until END, \
                 mute_until_events = CASE WHEN touched.woke = 1 THEN NULL \
                   ELSE mute_until_events END, \
                 mute_until_users = CASE WHEN touched.woke = 1 THEN NULL \
                   ELSE mute_until_users END, \
                 payloads_kept = payloads_kept + touched.kept, \
                 payloads_dropped = payloads_dropped + touched.dropped \
                 FROM touched WHERE crash_groups.id = touched.id",
                placeholders(chunk.len(), 11, 1)
            );
            let sql = Dialect::of_connection(tx).statement(sql);
            let mut update = sqlx::query(&sql);
            for id in chunk {
                let t = &self.groups[id];
                update = update
                    .bind(*id)
                    .bind(t.events)
                    .bind(t.new_users)
                    .bind(t.group.first_seen)
                    .bind(t.group.last_seen)
                    .bind(t.group.first_release.as_deref())
                    .bind(t.group.last_release.as_deref())
                    .bind(i64::from(t.reopened))
                    .bind(t.kept)
                    .bind(t.dropped)
                    .bind(i64::from(t.woke));
            }
            update.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Every touched hour in one upsert (100 to a chunk).
    async fn write_hours(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), IndexError> {
        for chunk in self.hour_order.chunks(100) {
            let sql = format!(
                "INSERT INTO group_hours (group_id, hour, events, payloads) VALUES {} \
                 ON CONFLICT (group_id, hour) DO UPDATE SET \
                 events = group_hours.events + excluded.events, \
                 payloads = group_hours.payloads + excluded.payloads",
                placeholders(chunk.len(), 4, 1)
            );
            let sql = Dialect::of_connection(tx).statement(sql);
            let mut upsert = sqlx::query(&sql);
            for key in chunk {
                let h = &self.hours[key];
                upsert = upsert
                    .bind(key.0)
                    .bind(key.1)
                    .bind(h.events_added)
                    .bind(h.payloads_added);
            }
            upsert.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// The group for `crash`'s fingerprint, creating it: `(group ID, whether this call created
/// it)`. When another writer inserted the same fingerprint first (on Postgres, this insert waits
/// for that writer's commit), the group made here is dropped and the crash joins the other.
async fn create_group(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    crash: &NewCrash,
) -> Result<(i64, bool), IndexError> {
    let a = &crash.attributes;
    let id: i64 = sqlx::query(
        "INSERT INTO crash_groups (project_id, signature, fault_class, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(a.project_id)
    .bind(a.signature.as_str())
    .bind(a.fault_class.as_str())
    .bind(a.received_at)
    .bind(a.received_at)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    let inserted = sqlx::query(
        "INSERT INTO group_fingerprints (project_id, fingerprint, group_id) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, fingerprint) DO NOTHING RETURNING group_id",
    )
    .bind(a.project_id)
    .bind(a.fingerprint.as_str())
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if inserted.is_some() {
        return Ok((id, true));
    }
    metrics::counter!("faultline_index_group_races_total").increment(1);
    sqlx::query("DELETE FROM crash_groups WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let winner: i64 = sqlx::query(
        "SELECT group_id FROM group_fingerprints WHERE project_id = $1 AND fingerprint = $2",
    )
    .bind(a.project_id)
    .bind(a.fingerprint.as_str())
    .fetch_one(&mut **tx)
    .await?
    .try_get("group_id")?;
    Ok((winner, false))
}
