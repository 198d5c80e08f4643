//! Changes triage makes to the index: a reprocessed crash forgotten when it is recorded
//! again, a payload that could not be stored, a group's state, assignee and fix release, and merges.

use sqlx::Row;

use super::{
    group_from, record, version, CrashIndex, Dialect, Group, GroupPatch, GroupState, IndexError,
    GROUP_COLUMNS,
};

impl CrashIndex {
    /// Removes a crash from the index inside `tx` (the recording of its reprocessing): its row and annotations go,
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
            "DELETE FROM crash_missing_symbol_sets WHERE crash_id = $1",
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

    /// Applies a triage update; `None` when there is no such group.
    pub async fn update_group(
        &self,
        id: i64,
        patch: &GroupPatch,
    ) -> Result<Option<Group>, IndexError> {
        if patch.mute_for_events.flatten().is_some_and(|n| n < 1) {
            return Err(IndexError::Rejected(
                "mute_for_events must be at least 1".to_owned(),
            ));
        }
        if patch.mute_for_users.flatten().is_some_and(|n| n < 1) {
            return Err(IndexError::Rejected(
                "mute_for_users must be at least 1".to_owned(),
            ));
        }
        // A mute's end belongs to the mute: another state clears it.
        let leaving_mute = patch.state.is_some_and(|s| s != GroupState::Muted);
        let muted_until = if leaving_mute {
            Some(None)
        } else {
            patch.muted_until
        };
        let mute_for_events = if leaving_mute {
            Some(None)
        } else {
            patch.mute_for_events
        };
        let mute_for_users = if leaving_mute {
            Some(None)
        } else {
            patch.mute_for_users
        };
        {
            let _writer = self.write.lock().await;
            // One statement, so a patch applies whole or not at all; a flag per field says
            // whether the patch sets it (an assignee or release can be cleared to NULL).
            // Reopening or resolving clears the regression flag. "N more events" is stored as
            // the event count at which the group wakes; "N more users" likewise.
            let changed = sqlx::query(
                "UPDATE crash_groups SET \
                 state = CASE WHEN $1 = 1 THEN $2 ELSE state END, \
                 regressed = CASE WHEN $1 = 1 THEN 0 ELSE regressed END, \
                 assignee = CASE WHEN $3 = 1 THEN $4 ELSE assignee END, \
                 resolved_in = CASE WHEN $5 = 1 THEN $6 ELSE resolved_in END, \
                 muted_until = CASE WHEN $7 = 1 THEN $8 ELSE muted_until END, \
                 mute_until_events = CASE WHEN $9 = 1 THEN event_count + $10 \
                   ELSE mute_until_events END, \
                 mute_until_users = CASE WHEN $12 = 1 THEN user_count + $13 \
                   ELSE mute_until_users END \
                 WHERE id = $11",
            )
            .bind(i64::from(patch.state.is_some()))
            .bind(patch.state.map(GroupState::as_str))
            .bind(i64::from(patch.assignee.is_some()))
            .bind(patch.assignee.clone().flatten())
            .bind(i64::from(patch.resolved_in.is_some()))
            .bind(patch.resolved_in.clone().flatten())
            .bind(i64::from(muted_until.is_some()))
            .bind(muted_until.flatten())
            .bind(i64::from(mute_for_events.is_some()))
            .bind(mute_for_events.flatten())
            .bind(id)
            .bind(i64::from(mute_for_users.is_some()))
            .bind(mute_for_users.flatten())
            .execute(&self.pool)
            .await?;
            if changed.rows_affected() == 0 {
                return Ok(None);
            }
        }
        self.group(id).await
    }

    /// Merges `from` groups into `into`: their fingerprints, crashes, users and counts move;
    /// they are left as redirects (`merged_into`).
    pub async fn merge(&self, into: i64, from: &[i64]) -> Result<Option<Group>, IndexError> {
        if from.contains(&into) {
            return Err(IndexError::Rejected(
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
        let Some(target) = live_group(&mut tx, into).await? else {
            return Ok(None);
        };
        for &source in from {
            let source_group = live_group(&mut tx, source).await?.ok_or_else(|| {
                IndexError::Rejected(format!(
                    "group {source} does not exist or was already merged"
                ))
            })?;
            if source_group.project_id != target.project_id {
                return Err(IndexError::Rejected(format!(
                    "group {source} belongs to another project: groups merge only within a project"
                )));
            }
            move_members(&mut tx, into, source).await?;
            add_hours(&mut tx, into, source).await?;
            add_counts(&mut tx, into, &source_group).await?;
            sqlx::query("UPDATE crash_groups SET merged_into = $1, state = $2 WHERE id = $3")
                .bind(into)
                .bind(GroupState::Merged.as_str())
                .bind(source)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        drop(_writer);
        self.group(into).await
    }
}

/// The group `id`, unless it does not exist or was merged away.
async fn live_group(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
) -> Result<Option<Group>, IndexError> {
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM crash_groups WHERE id = $1 AND merged_into IS NULL"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(group_from).transpose()?)
}

/// Moves the fingerprints, crashes and distinct users of `source` to `into`.
async fn move_members(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    into: i64,
    source: i64,
) -> Result<(), IndexError> {
    for sql in [
        "UPDATE group_fingerprints SET group_id = $1 WHERE group_id = $2",
        "UPDATE crashes SET group_id = $1 WHERE group_id = $2",
    ] {
        sqlx::query(sql)
            .bind(into)
            .bind(source)
            .execute(&mut **tx)
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
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM group_users WHERE group_id = $1")
        .bind(source)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds the hourly counts of `source` to those of `into`, hour by hour.
async fn add_hours(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    into: i64,
    source: i64,
) -> Result<(), IndexError> {
    let hours = sqlx::query("SELECT hour, events, payloads FROM group_hours WHERE group_id = $1")
        .bind(source)
        .fetch_all(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
        if updated.rows_affected() == 0 {
            sqlx::query("INSERT INTO group_hours (group_id, hour, events, payloads) VALUES ($1, $2, $3, $4)")
                .bind(into)
                .bind(h)
                .bind(e)
                .bind(p)
                .execute(&mut **tx)
                .await?;
        }
    }
    sqlx::query("DELETE FROM group_hours WHERE group_id = $1")
        .bind(source)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds the counts, times and releases of `source` to `into`'s (distinct users recounted).
async fn add_counts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    into: i64,
    source: &Group,
) -> Result<(), IndexError> {
    let target = group_from(
        &sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM crash_groups WHERE id = $1"
        ))
        .bind(into)
        .fetch_one(&mut **tx)
        .await?,
    )?;
    let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM group_users WHERE group_id = $1")
        .bind(into)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    sqlx::query(
        "UPDATE crash_groups SET event_count = $1, user_count = $2, first_seen = $3, last_seen = $4, \
         first_release = $5, last_release = $6, payloads_kept = $7, payloads_dropped = $8 WHERE id = $9",
    )
    .bind(target.event_count + source.event_count)
    .bind(users)
    .bind(target.first_seen.min(source.first_seen))
    .bind(target.last_seen.max(source.last_seen))
    .bind(version::earliest(&target.first_release, &source.first_release))
    .bind(version::latest(&target.last_release, &source.last_release))
    .bind(target.payloads_kept + source.payloads_kept)
    .bind(target.payloads_dropped + source.payloads_dropped)
    .bind(into)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
