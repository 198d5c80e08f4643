//! Marking the ingest queue's crashes processed, in the index's batches (`record.rs`): the
//! modules each crash lacked symbols for, when each module's files were last used, and the
//! queue rows' state.
//!
//! The modules a crash lacked symbols for are stored as a set shared by every crash that lacked
//! exactly those: crashes of one build lack the same twenty-odd system libraries, and a row per
//! crash and module was half of the database's time while a backlog drained. A set is named by
//! the SHA-256 of its modules; a crash points at its set. Each node remembers which sets'
//! modules it has seen stored, so a batch writes only one row per crash and one per set.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{placeholders, Dialect, FinishedCrash, IndexError, MissingModule};

/// Sets remembered as stored before the memory is cleared (each an `i64`).
const MAX_KNOWN_SETS: usize = 100_000;
/// Rows per statement.
const CHUNK: usize = 200;

/// The missing-symbol sets whose modules this node has seen committed. A set deleted by
/// retention and needed again is created under a new ID (IDs are never reused), so a
/// remembered ID always has its modules.
#[derive(Default)]
pub(super) struct StoredSets(Mutex<HashSet<i64>>);

impl StoredSets {
    fn contains(&self, id: i64) -> bool {
        self.0.lock().expect("never poisoned").contains(&id)
    }

    /// Remembers sets whose modules a committed transaction wrote.
    pub(super) fn remember(&self, ids: Vec<i64>) {
        let mut known = self.0.lock().expect("never poisoned");
        if known.len() + ids.len() > MAX_KNOWN_SETS {
            known.clear();
        }
        known.extend(ids);
    }
}

/// Marks queue rows processed and replaces the modules each crash lacked symbols for (a fixed
/// number of statements, whatever their number). Returns the sets whose modules it wrote, to
/// remember once the transaction is committed.
pub(super) async fn write_finished(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    finished: &[&FinishedCrash],
    stored: &StoredSets,
) -> Result<Vec<i64>, IndexError> {
    let now = crate::clock::now();
    let mut written = Vec::new();
    for chunk in finished.chunks(CHUNK) {
        forget_missing(tx, chunk).await?;
        written.extend(link_missing_sets(tx, chunk, stored, now).await?);
        mark_used(tx, chunk, now).await?;
        mark_processed(tx, chunk, now).await?;
    }
    Ok(written)
}

/// Drops the crashes' links to what they lacked before (a reprocessed crash's old set).
async fn forget_missing(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chunk: &[&FinishedCrash],
) -> Result<(), IndexError> {
    let sql = format!(
        "DELETE FROM crash_missing_symbol_sets WHERE crash_id IN ({})",
        placeholders(chunk.len(), 1, 1)
    );
    let sql = Dialect::of_connection(tx).statement(sql);
    let mut query = sqlx::query(&sql);
    for f in chunk {
        query = query.bind(f.crash_id.as_str());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// A crash's missing modules, one per debug ID (the last the list names), in debug ID order,
/// and the name of that set.
fn missing_set(crash: &FinishedCrash) -> Option<(String, Vec<&MissingModule>)> {
    let modules: BTreeMap<&str, &MissingModule> = crash
        .missing_modules
        .iter()
        .map(|m| (m.debug_id.as_str(), m))
        .collect();
    if modules.is_empty() {
        return None;
    }
    let mut digest = Sha256::new();
    for module in modules.values() {
        for field in [
            Some(&module.debug_id),
            module.debug_file.as_ref(),
            module.code_file.as_ref(),
            module.code_id.as_ref(),
        ] {
            // Present or absent, then the text and a terminator no field contains.
            match field {
                Some(text) => {
                    digest.update([1]);
                    digest.update(text.as_bytes());
                    digest.update([0]);
                }
                None => digest.update([2]),
            }
        }
        digest.update([b'\n']);
    }
    Some((
        hex::encode(digest.finalize()),
        modules.into_values().collect(),
    ))
}

/// Points each crash at the set of modules it lacked symbols for, creating the sets (and their
/// modules) not stored yet. Returns the sets whose modules were written.
async fn link_missing_sets(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chunk: &[&FinishedCrash],
    stored: &StoredSets,
    now: i64,
) -> Result<Vec<i64>, IndexError> {
    let crashes: Vec<(&str, String, Vec<&MissingModule>)> = chunk
        .iter()
        .filter_map(|f| {
            let (digest, modules) = missing_set(f)?;
            Some((f.crash_id.as_str(), digest, modules))
        })
        .collect();
    if crashes.is_empty() {
        return Ok(Vec::new());
    }
    let sets: BTreeMap<&str, &[&MissingModule]> = crashes
        .iter()
        .map(|(_, digest, modules)| (digest.as_str(), modules.as_slice()))
        .collect();
    let ids = upsert_sets(tx, sets.keys().copied(), now).await?;
    let new: Vec<(i64, &MissingModule)> = sets
        .iter()
        .map(|(digest, modules)| (ids[*digest], *modules))
        .filter(|(id, _)| !stored.contains(*id))
        .flat_map(|(id, modules)| modules.iter().map(move |m| (id, *m)))
        .collect();
    for rows in new.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO missing_symbol_set_modules \
             (set_id, debug_id, debug_file, code_file, code_id) VALUES {} \
             ON CONFLICT (set_id, debug_id) DO NOTHING",
            placeholders(rows.len(), 5, 1)
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for (id, module) in rows {
            query = query
                .bind(*id)
                .bind(module.debug_id.as_str())
                .bind(module.debug_file.as_deref())
                .bind(module.code_file.as_deref())
                .bind(module.code_id.as_deref());
        }
        query.execute(&mut **tx).await?;
    }
    let sql = format!(
        "INSERT INTO crash_missing_symbol_sets (crash_id, set_id) VALUES {}",
        placeholders(crashes.len(), 2, 1)
    );
    let sql = Dialect::of_connection(tx).statement(sql);
    let mut query = sqlx::query(&sql);
    for (crash_id, digest, _) in &crashes {
        query = query.bind(*crash_id).bind(ids[digest.as_str()]);
    }
    query.execute(&mut **tx).await?;
    let written: BTreeSet<i64> = new.iter().map(|(id, _)| *id).collect();
    Ok(written.into_iter().collect())
}

/// The IDs of the sets named by `digests`, created where missing; each marked used now (so
/// retention, which sweeps sets unused for a day that no crash points at, leaves them; on
/// Postgres the update also locks the row against that sweep until the batch commits).
async fn upsert_sets<'d>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    digests: impl ExactSizeIterator<Item = &'d str>,
    now: i64,
) -> Result<HashMap<String, i64>, IndexError> {
    let sql = format!(
        "INSERT INTO missing_symbol_sets (digest, used_at) VALUES {} \
         ON CONFLICT (digest) DO UPDATE SET used_at = excluded.used_at RETURNING id, digest",
        placeholders(digests.len(), 2, 1)
    );
    let sql = Dialect::of_connection(tx).statement(sql);
    let mut query = sqlx::query(&sql);
    for digest in digests {
        query = query.bind(digest).bind(now);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("digest")?, row.try_get("id")?)))
        .collect()
}

/// When each module's files were last used (at most one write an hour per module).
async fn mark_used(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chunk: &[&FinishedCrash],
    now: i64,
) -> Result<(), IndexError> {
    let used: BTreeSet<&str> = chunk
        .iter()
        .flat_map(|f| f.used_modules.iter().map(String::as_str))
        .collect();
    let used: Vec<&str> = used.into_iter().collect();
    for ids in used.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO symbol_usage (debug_id, last_used_at) VALUES {} \
             ON CONFLICT (debug_id) DO UPDATE SET last_used_at = excluded.last_used_at \
             WHERE symbol_usage.last_used_at < excluded.last_used_at - 3600",
            placeholders(ids.len(), 2, 1)
        );
        let sql = Dialect::of_connection(tx).statement(sql);
        let mut query = sqlx::query(&sql);
        for id in ids {
            query = query.bind(*id).bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The queue rows' state: processed.
async fn mark_processed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chunk: &[&FinishedCrash],
    now: i64,
) -> Result<(), IndexError> {
    let sql = format!(
        "UPDATE ingest_queue SET state = 'processed', error = NULL, claimed_by = NULL, \
         lease_until = NULL, reprocess = 0, updated_at = $1 WHERE crash_id IN ({})",
        placeholders(chunk.len(), 1, 2)
    );
    let sql = Dialect::of_connection(tx).statement(sql);
    let mut query = sqlx::query(&sql).bind(now);
    for f in chunk {
        query = query.bind(f.crash_id.as_str());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
