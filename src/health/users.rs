//! Distinct users, inside the session writer's transaction. Each user set (a release's users in
//! one environment and day, and its users of all time) is counted exactly, one `session_users`
//! row per user, up to `EXACT_USERS`; the batch that passes the limit folds the set's rows into
//! a HyperLogLog sketch (`crate::group::index::user_sketch`), and from then on its users only
//! raise sketch registers, so a release with millions of players keeps 16,384 rows per set
//! instead of millions. A batch locks its sets first (`INSERT … ON CONFLICT DO UPDATE`, in key
//! order, several to a statement), so two nodes recording the same set take turns and its counts
//! stay true.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, Row, Transaction};

use super::statements::{in_list_chunks, multi_row, placeholders, statement_chunks, Bound, Script};
use crate::group::index::user_sketch::{register_of, Histogram, ALL_TIME, EXACT_USERS, REGISTERS};
use crate::group::index::Dialect;

/// (project, release, environment, day): one user set.
type SetKey = (i64, String, String, i64);

/// A set's counts as stored, locked for this transaction.
struct SetState {
    users: i64,
    crashed_users: i64,
    sketched: bool,
    all: Histogram,
    crashed: Histogram,
}

/// What a batch did to each release's all-time users: (new users, newly crashed users).
pub type ReleaseUserChanges = HashMap<(i64, String), (i64, i64)>;

/// A batch's users by set (each with whether one of their sessions crashed), the sets' rows
/// locked for the transaction.
pub struct LockedSets<'a> {
    /// Each set's members in this batch, in key order.
    members: BTreeMap<SetKey, BTreeMap<&'a str, bool>>,
    /// Each set's counts as stored.
    stored: HashMap<SetKey, SetState>,
}

/// Locks the sets of a batch's users (each in their day's set and their release's all-time
/// set), creating the new ones.
pub async fn lock<'a>(
    tx: &mut Transaction<'static, Any>,
    users: &'a HashMap<(i64, String, String, i64, String), bool>,
    together: bool,
) -> Result<LockedSets<'a>, sqlx::Error> {
    let mut members: BTreeMap<SetKey, BTreeMap<&str, bool>> = BTreeMap::new();
    for ((project, release, environment, day, did), crashed) in users {
        for key in [
            (*project, release.clone(), environment.clone(), *day),
            (*project, release.clone(), ALL_TIME.0.into(), ALL_TIME.1),
        ] {
            *members
                .entry(key)
                .or_default()
                .entry(did.as_str())
                .or_default() |= *crashed;
        }
    }
    let keys: Vec<&SetKey> = members.keys().collect();
    let stored = lock_all(tx, &keys, together).await?;
    Ok(LockedSets { members, stored })
}

impl LockedSets<'_> {
    /// Below the limit each user is a row: adds to `script` the rows of the exactly counted
    /// sets' users (several sets to a statement) and the marks of their crashed ones, each
    /// statement returning the rows it inserted or marked (what [`LockedSets::settle`] counts).
    pub fn add_exactly(&self, script: &mut Script) {
        let exact = |key: &SetKey| self.stored.get(key).is_some_and(|state| !state.sketched);
        let rows: Vec<(&SetKey, &str)> = self
            .members
            .iter()
            .filter(|(key, _)| exact(key))
            .flat_map(|(key, members)| members.keys().map(move |did| (key, *did)))
            .collect();
        for chunk in statement_chunks(&rows) {
            let sql = multi_row(
                "INSERT INTO session_users (project_id, release, environment, day, did, crashed) \
                 VALUES ",
                6,
                chunk.len(),
                " ON CONFLICT (project_id, release, environment, day, did) DO NOTHING \
                 RETURNING project_id, release, environment, day, crashed",
            );
            let mut binds = Vec::with_capacity(chunk.len() * 6);
            for (key, did) in chunk {
                binds.extend(key_binds(key));
                binds.extend([Bound::from(*did), Bound::Int(0)]);
            }
            script.push(sql, binds);
        }
        for (key, members) in self.members.iter().filter(|(key, _)| exact(key)) {
            let crashed: Vec<&str> = members.iter().filter(|m| *m.1).map(|m| *m.0).collect();
            for chunk in in_list_chunks(&crashed) {
                let sql = format!(
                    "UPDATE session_users SET crashed = 1 WHERE project_id = $1 AND release = $2 \
                     AND environment = $3 AND day = $4 AND crashed = 0 AND did IN ({}) \
                     RETURNING project_id, release, environment, day, crashed",
                    placeholders(5, chunk.len())
                );
                let mut binds: Vec<Bound> = key_binds(key).into();
                binds.extend(chunk.into_iter().map(Bound::from));
                script.push(sql, binds);
            }
        }
    }

    /// Counts what [`LockedSets::add_exactly`]'s statements returned (`added`: a user inserted
    /// is new, one marked is newly crashed), folds the sets that passed the limit into their
    /// sketches, raises the sketched sets' registers, and adds to `saves` every changed set's
    /// counts; how each release's all-time counts moved.
    pub async fn settle(
        mut self,
        tx: &mut Transaction<'static, Any>,
        added: &[sqlx::any::AnyRow],
        floors: &mut RegisterFloors,
        saves: &mut Script,
    ) -> Result<ReleaseUserChanges, sqlx::Error> {
        let mut counted: HashMap<SetKey, (i64, i64)> = HashMap::new();
        for row in added {
            let key: SetKey = (
                row.try_get("project_id")?,
                row.try_get("release")?,
                row.try_get("environment")?,
                row.try_get("day")?,
            );
            let crashed: i64 = row.try_get("crashed")?;
            let count = counted.entry(key).or_default();
            if crashed == 0 {
                count.0 += 1;
            } else {
                count.1 += 1;
            }
        }
        let mut changes = ReleaseUserChanges::new();
        let mut changed = Vec::new();
        for (key, members) in &self.members {
            let mut state = self.stored.remove(key).ok_or(sqlx::Error::RowNotFound)?;
            let before = (state.users, state.crashed_users);
            let was_sketched = state.sketched;
            let histograms = (state.all.clone(), state.crashed.clone());
            if state.sketched {
                let members: Vec<(&str, bool)> = members.iter().map(|(d, c)| (*d, *c)).collect();
                raise(tx, key, &members, &mut state, floors).await?;
            } else {
                let (new, crashed) = counted.get(key).copied().unwrap_or_default();
                state.users += new;
                state.crashed_users += crashed;
                if state.users >= EXACT_USERS {
                    fold(tx, key, &mut state, floors).await?;
                }
            }
            if (key.2.as_str(), key.3) == ALL_TIME {
                let change = changes.entry((key.0, key.1.clone())).or_default();
                change.0 += state.users - before.0;
                change.1 += state.crashed_users - before.1;
            }
            if (state.users, state.crashed_users) != before
                || state.sketched != was_sketched
                || (state.all.clone(), state.crashed.clone()) != histograms
            {
                changed.push((key, state));
            }
        }
        save_all(&changed, saves);
        Ok(changes)
    }
}

/// Every set's row, created if new and locked until the transaction ends: in key order (two
/// writers lock shared sets in the same order, never crosswise), several to a statement, the
/// statements sent as one script.
async fn lock_all(
    tx: &mut Transaction<'static, Any>,
    keys: &[&SetKey],
    together: bool,
) -> Result<HashMap<SetKey, SetState>, sqlx::Error> {
    let mut script = Script::new(together);
    for chunk in statement_chunks(keys) {
        let sql = multi_row(
            "INSERT INTO session_user_sets (project_id, release, environment, day) VALUES ",
            4,
            chunk.len(),
            " ON CONFLICT (project_id, release, environment, day) \
             DO UPDATE SET sketched = session_user_sets.sketched \
             RETURNING project_id, release, environment, day, users, crashed_users, sketched, \
             users_histogram, crashed_histogram",
        );
        script.push(sql, chunk.iter().flat_map(|key| key_binds(key)).collect());
    }
    let mut states = HashMap::with_capacity(keys.len());
    for row in script.run(tx).await? {
        let key: SetKey = (
            row.try_get("project_id")?,
            row.try_get("release")?,
            row.try_get("environment")?,
            row.try_get("day")?,
        );
        states.insert(key, set_state(&row)?);
    }
    Ok(states)
}

/// A set's counts as its row holds them.
fn set_state(row: &sqlx::any::AnyRow) -> Result<SetState, sqlx::Error> {
    let histogram = |column: &str| -> Result<Histogram, sqlx::Error> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text
            .as_deref()
            .and_then(Histogram::from_text)
            .unwrap_or_default())
    };
    let sketched: i64 = row.try_get("sketched")?;
    Ok(SetState {
        users: row.try_get("users")?,
        crashed_users: row.try_get("crashed_users")?,
        sketched: sketched != 0,
        all: histogram("users_histogram")?,
        crashed: histogram("crashed_histogram")?,
    })
}

/// The set passed the limit: its exact users go into the sketches, which count it from now on.
async fn fold(
    tx: &mut Transaction<'static, Any>,
    key: &SetKey,
    state: &mut SetState,
    floors: &mut RegisterFloors,
) -> Result<(), sqlx::Error> {
    let rows = bind_key(
        sqlx::query(
            "SELECT did, crashed FROM session_users WHERE project_id = $1 AND release = $2 \
             AND environment = $3 AND day = $4",
        ),
        key,
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        let crashed: i64 = row.try_get("crashed")?;
        members.push((row.try_get::<String, _>("did")?, crashed != 0));
    }
    let members: Vec<(&str, bool)> = members.iter().map(|(d, c)| (d.as_str(), *c)).collect();
    state.sketched = true;
    raise(tx, key, &members, state, floors).await
}

/// Raises the sketches' registers for `members`; the set's counts become their estimates.
async fn raise(
    tx: &mut Transaction<'static, Any>,
    key: &SetKey,
    members: &[(&str, bool)],
    state: &mut SetState,
    floors: &mut RegisterFloors,
) -> Result<(), sqlx::Error> {
    for crashed_only in [false, true] {
        let sketch = (key.clone(), crashed_only);
        let mut wanted: BTreeMap<i64, u8> = BTreeMap::new();
        for (did, crashed) in members {
            if crashed_only && !crashed {
                continue;
            }
            let (register, rank) = register_of(did);
            if floors.at_least(&sketch, register, rank) {
                continue;
            }
            let slot = wanted.entry(register as i64).or_default();
            *slot = (*slot).max(rank);
        }
        if wanted.is_empty() {
            continue;
        }
        let stored = stored_ranks(tx, &sketch, &wanted).await?;
        for (&register, &rank) in &stored {
            floors.observe(&sketch, register, rank);
        }
        let raised: Vec<(i64, u8)> = wanted
            .into_iter()
            .filter(|(register, rank)| stored.get(register).is_none_or(|old| rank > old))
            .collect();
        let histogram = if crashed_only {
            &mut state.crashed
        } else {
            &mut state.all
        };
        for &(register, rank) in &raised {
            histogram.raise(stored.get(&register).copied().unwrap_or(0), rank);
            floors.stage(&sketch, register, rank);
        }
        write_ranks(tx, &sketch, &raised).await?;
    }
    state.users = state.all.estimate();
    state.crashed_users = state.crashed.estimate().min(state.users);
    Ok(())
}

/// One sketch: a set and whether it holds only the crashed users.
type SketchKey = (SetKey, bool);

/// The stored ranks of the registers `wanted` names (absent: empty).
async fn stored_ranks(
    tx: &mut Transaction<'static, Any>,
    sketch: &SketchKey,
    wanted: &BTreeMap<i64, u8>,
) -> Result<HashMap<i64, u8>, sqlx::Error> {
    let registers: Vec<i64> = wanted.keys().copied().collect();
    let mut stored = HashMap::new();
    for list in in_list_chunks(&registers) {
        let sql = format!(
            "SELECT register, rank FROM session_user_sketches WHERE project_id = $1 \
             AND release = $2 AND environment = $3 AND day = $4 AND crashed = $5 \
             AND register IN ({})",
            placeholders(6, list.len())
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = bind_key(sqlx::query(&sql), &sketch.0).bind(i64::from(sketch.1));
        for register in list {
            query = query.bind(register);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let rank: i64 = row.try_get("rank")?;
            stored.insert(row.try_get("register")?, rank.clamp(0, 255) as u8);
        }
    }
    Ok(stored)
}

/// Writes raised registers (never lowering one another writer raised meanwhile).
async fn write_ranks(
    tx: &mut Transaction<'static, Any>,
    sketch: &SketchKey,
    raised: &[(i64, u8)],
) -> Result<(), sqlx::Error> {
    for rows in statement_chunks(raised) {
        let sql = multi_row(
            "INSERT INTO session_user_sketches (project_id, release, environment, day, crashed, \
             register, rank) VALUES ",
            7,
            rows.len(),
            " ON CONFLICT (project_id, release, environment, day, crashed, register) DO UPDATE \
             SET rank = CASE WHEN excluded.rank > session_user_sketches.rank \
             THEN excluded.rank ELSE session_user_sketches.rank END",
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for (register, rank) in rows {
            query = bind_key(query, &sketch.0)
                .bind(i64::from(sketch.1))
                .bind(*register)
                .bind(i64::from(*rank));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Sketches kept in memory at most (16 KiB each).
const FLOOR_SETS: usize = 256;

/// What this node knows each sketch register is at least: registers only rise, so a user whose
/// rank is at most its register's known floor cannot change the sketch, and is neither read nor
/// written. Floors learn committed ranks only (this batch's raises once it commits).
#[derive(Default)]
pub struct RegisterFloors {
    sketches: HashMap<SketchKey, Vec<u8>>,
    staged: Vec<(SketchKey, i64, u8)>,
}

impl RegisterFloors {
    fn at_least(&self, sketch: &SketchKey, register: usize, rank: u8) -> bool {
        self.sketches
            .get(sketch)
            .is_some_and(|floors| floors[register] >= rank)
    }

    fn observe(&mut self, sketch: &SketchKey, register: i64, rank: u8) {
        if !self.sketches.contains_key(sketch) && self.sketches.len() >= FLOOR_SETS {
            self.sketches.clear();
        }
        let floors = self
            .sketches
            .entry(sketch.clone())
            .or_insert_with(|| vec![0; REGISTERS]);
        if let Some(floor) = floors.get_mut(register as usize) {
            *floor = (*floor).max(rank);
        }
    }

    fn stage(&mut self, sketch: &SketchKey, register: i64, rank: u8) {
        self.staged.push((sketch.clone(), register, rank));
    }

    /// The batch committed: its raises are floors now.
    pub fn committed(&mut self) {
        for (sketch, register, rank) in std::mem::take(&mut self.staged) {
            self.observe(&sketch, register, rank);
        }
    }

    /// The batch failed: forget its raises.
    pub fn rolled_back(&mut self) {
        self.staged.clear();
    }
}

/// Adds to `saves` the changed sets' counts (their rows exist and are locked), several to a
/// statement.
fn save_all(changed: &[(&SetKey, SetState)], saves: &mut Script) {
    for chunk in statement_chunks(changed) {
        let sql = multi_row(
            "INSERT INTO session_user_sets (project_id, release, environment, day, users, \
             crashed_users, sketched, users_histogram, crashed_histogram) VALUES ",
            9,
            chunk.len(),
            " ON CONFLICT (project_id, release, environment, day) DO UPDATE SET \
             users = excluded.users, crashed_users = excluded.crashed_users, \
             sketched = excluded.sketched, users_histogram = excluded.users_histogram, \
             crashed_histogram = excluded.crashed_histogram",
        );
        let mut binds = Vec::with_capacity(chunk.len() * 9);
        for (key, state) in chunk {
            let (all, crashed) = if state.sketched {
                (Some(state.all.to_text()), Some(state.crashed.to_text()))
            } else {
                (None, None)
            };
            binds.extend(key_binds(key));
            binds.extend([
                Bound::Int(state.users),
                Bound::Int(state.crashed_users),
                Bound::Int(i64::from(state.sketched)),
                Bound::from(all),
                Bound::from(crashed),
            ]);
        }
        saves.push(sql, binds);
    }
}

/// A set's key as the values of `$1`–`$4`.
fn key_binds(key: &SetKey) -> [Bound; 4] {
    [
        Bound::Int(key.0),
        Bound::from(key.1.clone()),
        Bound::from(key.2.clone()),
        Bound::Int(key.3),
    ]
}

/// Binds a set's key as `$1`–`$4`.
fn bind_key<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    key: &SetKey,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(key.0)
        .bind(key.1.clone())
        .bind(key.2.clone())
        .bind(key.3)
}
