//! Reading the index: groups (filtered, sorted, paged), a group's history and breakdowns,
//! crashes by ID or by annotation.

use std::collections::HashMap;

use sqlx::Row;

use super::{
    crash_from, group_from, Bind, Breakdown, CrashIndex, CrashRow, Filter, Group, GroupDetail,
    GroupQuery, GroupSort, IndexError, MissingModule, MissingSymbols, Page, CRASH_COLUMNS,
    GROUP_COLUMNS,
};

impl CrashIndex {
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
        let mut filter = group_filter(query);
        let column = match (query.sort, &query.release) {
            (GroupSort::Rate, Some(release)) => {
                let p = filter.next();
                filter.binds.push(Bind::Text(release.clone()));
                format!(
                    "(SELECT COUNT(*) FROM crashes c WHERE c.group_id = crash_groups.id \
                     AND c.release = {p})"
                )
            }
            (GroupSort::Rate, None) => {
                return Err(IndexError::Rejected(
                    "sort=rate ranks groups by crashes per 1,000 sessions of one release: \
                     add release="
                        .into(),
                ))
            }
            (sort, _) => sort.column().to_owned(),
        };
        if let Some(cursor) = &query.cursor {
            let (value, id) = parse_cursor(cursor)?;
            let id = id.parse::<i64>().map_err(|_| invalid_cursor(cursor))?;
            filter.after(&column, "id", value, Bind::Int(id));
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
        let items = rows.iter().map(group_from).collect::<Result<Vec<_>, _>>()?;
        let in_release = match (query.sort, &query.release) {
            (GroupSort::Rate, Some(release)) => {
                let ids: Vec<i64> = items.iter().map(|g| g.id).collect();
                self.crashes_in_release(&ids, release).await?
            }
            _ => HashMap::new(),
        };
        let mut page = page_of(items, limit, |g| {
            let value = match query.sort {
                GroupSort::Events => g.event_count,
                GroupSort::Users => g.user_count,
                GroupSort::LastSeen => g.last_seen,
                GroupSort::FirstSeen => g.first_seen,
                GroupSort::Rate => in_release.get(&g.id).copied().unwrap_or(0),
            };
            format!("{value}_{}", g.id)
        });
        self.add_fingerprints(&mut page.items).await?;
        Ok(page)
    }

    /// How many crashes of each group came from `release`, in one query.
    pub async fn crashes_in_release(
        &self,
        ids: &[i64],
        release: &str,
    ) -> Result<HashMap<i64, i64>, IndexError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT group_id, COUNT(*) AS n FROM crashes WHERE release = $1 \
             AND group_id IN ({ids}) GROUP BY group_id"
        ))
        .bind(release)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = HashMap::new();
        for row in &rows {
            counts.insert(row.try_get("group_id")?, row.try_get("n")?);
        }
        Ok(counts)
    }

    /// The groups' fingerprints, in one query (one per group was most of a page's time).
    async fn add_fingerprints(&self, groups: &mut [Group]) -> Result<(), IndexError> {
        if groups.is_empty() {
            return Ok(());
        }
        let ids = groups
            .iter()
            .map(|g| g.id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT group_id, fingerprint FROM group_fingerprints \
             WHERE group_id IN ({ids}) ORDER BY fingerprint"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut by_group: HashMap<i64, Vec<String>> = HashMap::new();
        for row in rows {
            by_group
                .entry(row.try_get("group_id")?)
                .or_default()
                .push(row.try_get("fingerprint")?);
        }
        for group in groups {
            group.fingerprints = by_group.remove(&group.id).unwrap_or_default();
        }
        Ok(())
    }

    /// A group's crashes counted by release, by operating system, by product and by CPU, in
    /// one scan (of an index that covers it), most common first.
    async fn breakdowns(&self, id: i64) -> Result<[Vec<Breakdown>; 4], IndexError> {
        let rows = sqlx::query(
            "SELECT release, platform, product, cpu, COUNT(*) AS count FROM crashes \
             WHERE group_id = $1 GROUP BY release, platform, product, cpu",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts: [HashMap<Option<String>, i64>; 4] = Default::default();
        for row in &rows {
            let count: i64 = row.try_get("count")?;
            for (slot, column) in ["release", "platform", "product", "cpu"].iter().enumerate() {
                *counts[slot].entry(row.try_get(*column)?).or_default() += count;
            }
        }
        Ok(counts.map(|by_value| {
            let mut list: Vec<Breakdown> = by_value
                .into_iter()
                .map(|(value, count)| Breakdown { value, count })
                .collect();
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            list
        }))
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
        let [by_release, by_platform, by_product, by_cpu] = self.breakdowns(id).await?;
        Ok(Some(GroupDetail {
            by_release,
            by_platform,
            by_product,
            by_cpu,
            group,
            hourly,
            samples,
        }))
    }

    /// Crashes per hour since `since` (Unix seconds) for each of `groups`, oldest hour first
    /// (hours without crashes are absent): the groups page's sparklines, in one query.
    pub async fn hourly_counts(
        &self,
        groups: &[i64],
        since: i64,
    ) -> Result<HashMap<i64, Vec<(i64, i64)>>, IndexError> {
        let mut out: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        if groups.is_empty() {
            return Ok(out);
        }
        // IDs are integers from the index, never text from a request.
        let ids = groups
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT group_id, hour, events FROM group_hours \
             WHERE group_id IN ({ids}) AND hour >= $1 ORDER BY group_id, hour"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            out.entry(row.try_get("group_id")?)
                .or_default()
                .push((row.try_get("hour")?, row.try_get("events")?));
        }
        Ok(out)
    }

    /// A group's crashes counted by one annotation's value (crashes without it are not
    /// counted), most common first, at most `limit` values.
    pub async fn annotation_breakdown(
        &self,
        group_id: i64,
        name: &str,
        limit: i64,
    ) -> Result<Vec<Breakdown>, IndexError> {
        let rows = sqlx::query(
            "SELECT a.value AS value, COUNT(*) AS count FROM crashes c \
             JOIN crash_annotations a ON a.crash_id = c.id \
             WHERE c.group_id = $1 AND a.name = $2 \
             GROUP BY a.value ORDER BY count DESC, value LIMIT $3",
        )
        .bind(group_id)
        .bind(name)
        .bind(limit.clamp(1, 100))
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

    /// The annotation names a group's latest crashes carry (what its breakdowns can be by).
    pub async fn annotation_names(&self, group_id: i64) -> Result<Vec<String>, IndexError> {
        let rows = sqlx::query(
            "SELECT DISTINCT a.name AS name FROM crash_annotations a WHERE a.crash_id IN \
             (SELECT id FROM crashes WHERE group_id = $1 ORDER BY received_at DESC LIMIT 200) \
             ORDER BY name LIMIT 200",
        )
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("name"))
            .collect::<Result<_, _>>()?)
    }

    /// A group's latest crashes, kept payload or not.
    pub async fn group_crashes(
        &self,
        group_id: i64,
        limit: i64,
    ) -> Result<Vec<CrashRow>, IndexError> {
        let rows = sqlx::query(&format!(
            "SELECT {CRASH_COLUMNS} FROM crashes WHERE group_id = $1 \
             ORDER BY received_at DESC, id DESC LIMIT $2"
        ))
        .bind(group_id)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(crash_from).collect::<Result<_, _>>()?)
    }

    /// The debug files whose absence hurt the most crashes of a project (each counted once per
    /// crash; a crash reprocessed with the file leaves the count), most crashes first.
    pub async fn missing_symbols(
        &self,
        project_id: i64,
        limit: i64,
    ) -> Result<Vec<MissingSymbols>, IndexError> {
        let rows = sqlx::query(
            "SELECT m.debug_id AS debug_id, MAX(m.debug_file) AS debug_file, \
             MAX(m.code_file) AS code_file, MAX(m.code_id) AS code_id, COUNT(*) AS crashes, \
             MAX(c.received_at) AS last_seen \
             FROM crash_missing_symbol_sets cm JOIN crashes c ON c.id = cm.crash_id \
             JOIN missing_symbol_set_modules m ON m.set_id = cm.set_id \
             WHERE c.project_id = $1 GROUP BY m.debug_id \
             ORDER BY crashes DESC, last_seen DESC, debug_id LIMIT $2",
        )
        .bind(project_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(MissingSymbols {
                    module: MissingModule {
                        debug_id: r.try_get("debug_id")?,
                        debug_file: r.try_get("debug_file")?,
                        code_file: r.try_get("code_file")?,
                        code_id: r.try_get("code_id")?,
                    },
                    crashes: r.try_get("crashes")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
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
            let (at, id) = parse_cursor(cursor)?;
            filter.after("c.received_at", "c.id", at, Bind::Text(id.to_owned()));
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
        let items = rows.iter().map(crash_from).collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, limit, |c| {
            format!("{}_{}", c.attributes.received_at, c.attributes.id)
        }))
    }
}

/// The WHERE clauses of a group listing: live groups of the project, and every filter given.
fn group_filter(query: &GroupQuery) -> Filter {
    let mut filter = Filter::default();
    filter.clauses.push("merged_into IS NULL".to_owned());
    filter.int(|p| format!("project_id = {p}"), query.project_id);
    if let Some(state) = &query.state {
        filter.text(|p| format!("state = {p}"), state.as_str().to_owned());
    }
    if let Some(class) = &query.fault_class {
        filter.text(|p| format!("fault_class = {p}"), class.as_str().to_owned());
    }
    let in_crashes = |column: &str| {
        let column = column.to_owned();
        move |p: &str| format!("id IN (SELECT group_id FROM crashes WHERE {column}{p})")
    };
    if let Some(product) = &query.product {
        filter.text(in_crashes("product = "), product.clone());
    }
    if let Some(release) = &query.release {
        filter.text(in_crashes("release = "), release.clone());
    }
    if let Some(since) = query.since {
        filter.int(in_crashes("received_at >= "), since);
    }
    if let Some(until) = query.until {
        filter.int(in_crashes("received_at <= "), until);
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
    if let Some(assignee) = &query.assignee {
        filter.text(|p| format!("assignee = {p}"), assignee.clone());
    }
    if let Some(text) = &query.signature_contains {
        filter.text(
            |p| format!("LOWER(signature) LIKE {p} ESCAPE '\\'"),
            format!("%{}%", like_escaped(&text.to_lowercase())),
        );
    }
    filter
}

/// `text` matched literally by `LIKE … ESCAPE '\'` (its `%`, `_` and `\` are not wildcards).
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page cursor, `{sort value}_{id}`, as `next_cursor` gave it.
fn parse_cursor(cursor: &str) -> Result<(i64, &str), IndexError> {
    cursor
        .split_once('_')
        .and_then(|(value, id)| Some((value.parse::<i64>().ok()?, id)))
        .ok_or_else(|| invalid_cursor(cursor))
}

fn invalid_cursor(cursor: &str) -> IndexError {
    IndexError::Rejected(format!(
        "invalid cursor {cursor:?}: pass back next_cursor unchanged"
    ))
}

/// One page from `items`, read with `LIMIT limit + 1`: the extra row, if any, only says there
/// is a next page, whose cursor `cursor_of` makes from the page's last item.
fn page_of<T>(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}
