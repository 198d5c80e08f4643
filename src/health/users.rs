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

use super::statements::{in_list_chunks, multi_row, placeholders, statement_chunks};
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

/// Records a batch's users (each with whether one of their sessions crashed) in their day's set
/// and their release's all-time set; how each release's all-time counts moved.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    users: &HashMap<(i64, String, String, i64, String), bool>,
    floors: &mut RegisterFloors,
) -> Result<ReleaseUserChanges, sqlx::Error> {
    // Sets in key order: two writers lock shared sets in the same order, never crosswise.
    let mut sets: BTreeMap<SetKey, BTreeMap<&str, bool>> = BTreeMap::new();
    for ((project, release, environment, day, did), crashed) in users {
        for key in [
            (*project, release.clone(), environment.clone(), *day),
            (*project, release.clone(), ALL_TIME.0.into(), ALL_TIME.1),
        ] {
            *sets
                .entry(key)
                .or_default()
                .entry(did.as_str())
                .or_default() |= *crashed;
        }
    }
    let mut changes = ReleaseUserChanges::new();
    let keys: Vec<&SetKey> = sets.keys().collect();
    let mut locked = lock_all(tx, &keys).await?;
    let mut changed = Vec::new();
    for (key, members) in &sets {
        let members: Vec<(&str, bool)> = members.iter().map(|(d, c)| (*d, *c)).collect();
        let mut state = locked.remove(key).ok_or(sqlx::Error::RowNotFound)?;
        let before = (state.users, state.crashed_users);
        let was_sketched = state.sketched;
        let histograms = (state.all.clone(), state.crashed.clone());
        if state.sketched {
            raise(tx, key, &members, &mut state, floors).await?;
        } else {
            add_exactly(tx, key, &members, &mut state).await?;
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
    save_all(tx, &changed).await?;
    Ok(changes)
}

/// Every set's row, created if new and locked until the transaction ends: in key order (two
/// writers lock shared sets in the same order, never crosswise), several to a statement (each
/// statement is a round trip, on SQLite a hand-off to the database's thread).
async fn lock_all(
    tx: &mut Transaction<'static, Any>,
    keys: &[&SetKey],
) -> Result<HashMap<SetKey, SetState>, sqlx::Error> {
    let mut states = HashMap::with_capacity(keys.len());
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
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = bind_key(query, key);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let key: SetKey = (
                row.try_get("project_id")?,
                row.try_get("release")?,
                row.try_get("environment")?,
                row.try_get("day")?,
            );
            states.insert(key, set_state(&row)?);
        }
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

/// Below the limit: each user a row (new ones counted), crashed ones marked (newly crashed
/// ones counted).
async fn add_exactly(
    tx: &mut Transaction<'static, Any>,
    key: &SetKey,
    members: &[(&str, bool)],
    state: &mut SetState,
) -> Result<(), sqlx::Error> {
    for chunk in statement_chunks(members) {
        let sql = multi_row(
            "INSERT INTO session_users (project_id, release, environment, day, did, crashed) \
             VALUES ",
            6,
            chunk.len(),
            " ON CONFLICT (project_id, release, environment, day, did) DO NOTHING",
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for (did, _) in chunk {
            query = bind_key(query, key).bind(*did).bind(0i64);
        }
        state.users += query.execute(&mut **tx).await?.rows_affected() as i64;
    }
    let crashed: Vec<&str> = members.iter().filter(|m| m.1).map(|m| m.0).collect();
    for chunk in in_list_chunks(&crashed) {
        let sql = format!(
            "UPDATE session_users SET crashed = 1 WHERE project_id = $1 AND release = $2 \
             AND environment = $3 AND day = $4 AND crashed = 0 AND did IN ({})",
            placeholders(5, chunk.len())
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = bind_key(sqlx::query(&sql), key);
        for did in chunk {
            query = query.bind(did);
        }
        state.crashed_users += query.execute(&mut **tx).await?.rows_affected() as i64;
    }
    Ok(())
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

/// Writes the changed sets' counts back (their rows exist and are locked), several to a
/// statement.
async fn save_all(
    tx: &mut Transaction<'static, Any>,
    changed: &[(&SetKey, SetState)],
) -> Result<(), sqlx::Error> {
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
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for (key, state) in chunk {
            let (all, crashed) = if state.sketched {
                (Some(state.all.to_text()), Some(state.crashed.to_text()))
            } else {
                (None, None)
            };
            query = bind_key(query, key)
                .bind(state.users)
                .bind(state.crashed_users)
                .bind(i64::from(state.sketched))
                .bind(all)
                .bind(crashed);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
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
