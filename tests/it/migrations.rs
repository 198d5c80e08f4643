//! The migration twins: every table is born on both databases. Both migration sets are applied
//! (SQLite and Postgres, through `CrashIndex::open` as the server does) and the resulting
//! schemas compared: the same tables, the same columns with the same types (up to the
//! dialect's spelling), the same indexes on the same columns. A table, column or index added to
//! one folder of `migrations/` and not the other fails here. On SQLite the schema is the
//! index's file and the session file beside it (`migrations/sqlite-sessions`) together.

use std::collections::BTreeMap;

use faultline::group::index::{CrashIndex, PayloadBudget};
use sqlx::{AnyPool, Row};

use crate::common::{self, Db};

/// Table → column → type family.
type Columns = BTreeMap<String, BTreeMap<String, &'static str>>;
/// Index name → (table, columns in order, unique).
type Indexes = BTreeMap<String, (String, Vec<String>, bool)>;

/// The family a column type belongs to, whichever dialect spelled it.
fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    if t.contains("int") || t == "bool" || t == "boolean" {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.contains("clob") {
        "text"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else if t.contains("real")
        || t.contains("double")
        || t.contains("float")
        || t.contains("numeric")
    {
        "real"
    } else {
        "unknown"
    }
}

async fn open(db: Db, dir: &std::path::Path) -> Option<CrashIndex> {
    let url = common::database_url(db, dir).await?;
    let budget = PayloadBudget {
        per_new_group: 1,
        per_group_hour: 1,
    };
    Some(CrashIndex::open(&url, budget).await.unwrap())
}

async fn sqlite_schema(pool: &AnyPool) -> (Columns, Indexes) {
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("name"))
    .collect();
    let (mut columns, mut indexes) = (Columns::new(), Indexes::new());
    for table in tables {
        let rows = sqlx::query(&format!(
            "SELECT name, type FROM pragma_table_info('{table}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let cols = columns.entry(table.clone()).or_default();
        for row in rows {
            cols.insert(row.get("name"), family(&row.get::<String, _>("type")));
        }
        let list = sqlx::query(&format!(
            "SELECT name, \"unique\" AS is_unique, origin FROM pragma_index_list('{table}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for index in list {
            // Only indexes a migration created by name (not those behind PRIMARY KEY/UNIQUE).
            if index.get::<String, _>("origin") != "c" {
                continue;
            }
            let name: String = index.get("name");
            let cols: Vec<String> = sqlx::query(&format!(
                "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
            ))
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
            let unique = index.get::<i64, _>("is_unique") != 0;
            indexes.insert(name, (table.clone(), cols, unique));
        }
    }
    (columns, indexes)
}

async fn postgres_schema(pool: &AnyPool) -> (Columns, Indexes) {
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for row in rows {
        columns
            .entry(row.get("t"))
            .or_default()
            .insert(row.get("c"), family(&row.get::<String, _>("d")));
    }
    // Indexes a migration created by name: not those behind primary keys or constraints.
    let rows = sqlx::query(
        "SELECT i.relname::text AS name, t.relname::text AS tbl, \
                CASE WHEN x.indisunique THEN 1 ELSE 0 END AS is_unique, \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) \
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n), ',') AS cols \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND t.relname NOT LIKE '_sqlx%' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut indexes = Indexes::new();
    for row in rows {
        let cols: String = row.get("cols");
        indexes.insert(
            row.get("name"),
            (
                row.get("tbl"),
                cols.split(',').map(str::to_owned).collect(),
                row.get::<i32, _>("is_unique") != 0,
            ),
        );
    }
    (columns, indexes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_migration_sets_make_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open(Db::Sqlite, dir.path()).await.unwrap();
    let Some(postgres) = open(Db::Postgres, dir.path()).await else {
        return;
    };
    let (mut lite_columns, mut lite_indexes) = sqlite_schema(sqlite.pool()).await;
    let (session_columns, session_indexes) = sqlite_schema(sqlite.sessions_pool()).await;
    for (table, columns) in session_columns {
        assert!(
            !lite_columns.contains_key(&table),
            "{table} is in both SQLite files"
        );
        lite_columns.insert(table, columns);
    }
    lite_indexes.extend(session_indexes);
    assert!(
        lite_columns.contains_key("session_hours"),
        "no session tables on SQLite"
    );
    let (pg_columns, pg_indexes) = postgres_schema(postgres.pool()).await;
    // The comparison must have something to compare: the crash index's own tables.
    for table in ["crashes", "crash_groups", "ingest_queue"] {
        assert!(
            lite_columns.contains_key(table),
            "no {table} table on SQLite"
        );
    }
    assert!(!lite_indexes.is_empty(), "no named indexes read on SQLite");
    for (table, columns) in &lite_columns {
        assert_eq!(
            Some(columns),
            pg_columns.get(table),
            "table {table}: SQLite's columns (left) differ from Postgres' (right)"
        );
    }
    let only_pg: Vec<&String> = pg_columns
        .keys()
        .filter(|t| !lite_columns.contains_key(*t))
        .collect();
    assert!(only_pg.is_empty(), "tables only on Postgres: {only_pg:?}");
    assert_eq!(
        lite_indexes, pg_indexes,
        "indexes differ: SQLite's (left), Postgres' (right)"
    );
}

#[test]
fn type_families_join_the_dialects_spellings() {
    assert_eq!(family("INTEGER"), family("bigint"));
    assert_eq!(family("TEXT"), family("character varying"));
    assert_eq!(family("BLOB"), family("bytea"));
    assert_ne!(family("TEXT"), family("bigint"));
}

on_both_databases! {
    /// Migration 0022 keeps what crashes recorded before it lacked: each crash's modules become
    /// a set of its own, and the report's join counts them as the old table did.
    async fn missing_symbols_recorded_before_sets_are_kept(db: Db) {
        let dir = tempfile::tempdir().unwrap();
        let Some(url) = common::database_url(db, dir.path()).await else {
            return;
        };
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let folder = format!(
            "{}/migrations/{}",
            env!("CARGO_MANIFEST_DIR"),
            if db == Db::Sqlite { "sqlite" } else { "postgres" }
        );
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let apply = |path: std::path::PathBuf| {
            let pool = pool.clone();
            async move {
                let sql = std::fs::read_to_string(&path).unwrap();
                sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
            }
        };
        let (before, after): (Vec<_>, Vec<_>) = files.into_iter().partition(|p| {
            p.file_name().unwrap().to_str().unwrap() < "0022"
        });
        for path in before {
            apply(path).await;
        }
        for (crash, debug_id, file) in [("a", "D1", "libc.so"), ("a", "D2", "libm.so"), ("b", "D1", "libc.so")] {
            sqlx::query(
                "INSERT INTO crash_missing_symbols (crash_id, debug_id, debug_file, code_file, code_id) \
                 VALUES ($1, $2, $3, $3, NULL)",
            )
            .bind(crash)
            .bind(debug_id)
            .bind(file)
            .execute(&pool)
            .await
            .unwrap();
        }
        for path in after {
            apply(path).await;
        }
        let counts: Vec<(String, Option<String>, i64)> = sqlx::query(
            "SELECT m.debug_id AS debug_id, MAX(m.debug_file) AS debug_file, COUNT(*) AS crashes \
             FROM crash_missing_symbol_sets c JOIN missing_symbol_set_modules m ON m.set_id = c.set_id \
             GROUP BY m.debug_id ORDER BY m.debug_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("debug_id"), r.get("debug_file"), r.get("crashes")))
        .collect();
        assert_eq!(
            counts,
            [
                ("D1".to_owned(), Some("libc.so".to_owned()), 2),
                ("D2".to_owned(), Some("libm.so".to_owned()), 1)
            ]
        );
        let sets: i64 = sqlx::query("SELECT COUNT(*) AS n FROM missing_symbol_sets")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(sets, 2, "a set per crash");
        let old = sqlx::query("SELECT 1 FROM crash_missing_symbols").fetch_all(&pool).await;
        assert!(old.is_err(), "the old table is gone");
    }
}

/// A SQLite index from before the session file keeps its release health: opening it moves the
/// session rows into `index-sessions.sqlite` and drops the index's session tables; opening it
/// again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_counts_move_to_their_own_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("index.sqlite").display()
    );
    sqlx::any::install_default_drivers();
    let old = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    // The index as the build before the session file left it: the migrations it had.
    sqlx::migrate!("migrations/sqlite").run(&old).await.unwrap();
    for statement in [
        "INSERT INTO session_hours (project_id, release, environment, hour, sessions, exited, crashed) \
         VALUES (1, '2.0', 'production', 1796000400, 10, 7, 3)",
        "INSERT INTO session_releases (project_id, release, sessions, crashed, ended, users, crashed_users) \
         VALUES (1, '2.0', 10, 3, 10, 4, 2)",
        "INSERT INTO session_user_sets (project_id, release, environment, day, users, crashed_users) \
         VALUES (1, '2.0', '', -1, 4, 2)",
        "INSERT INTO session_states (project_id, sid, release, environment, hour, counted, final_status, updated_at) \
         VALUES (1, 's1', '2.0', 'production', 1796000400, 1, 'crashed', 1796000500)",
    ] {
        sqlx::query(statement).execute(&old).await.unwrap();
    }
    old.close().await;

    let budget = PayloadBudget {
        per_new_group: 1,
        per_group_hour: 1,
    };
    for opening in ["first", "second"] {
        let index = CrashIndex::open(&url, budget).await.unwrap();
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name LIKE 'session%'",
        )
        .fetch_one(index.pool())
        .await
        .unwrap()
        .get("n");
        assert_eq!(
            left, 0,
            "{opening} opening: session tables left in the index"
        );
        let health = faultline::health::Health::new(&index);
        let release = health
            .release_health(1, "2.0", &Default::default())
            .await
            .unwrap();
        assert_eq!(
            (
                release.sessions,
                release.crashed,
                release.users,
                release.crashed_users
            ),
            (10, 3, 4, 2),
            "{opening} opening: the release's counts"
        );
        assert_eq!(release.crash_free_sessions, Some(70.0));
        let states: i64 = sqlx::query("SELECT COUNT(*) AS n FROM session_states")
            .fetch_one(index.sessions_pool())
            .await
            .unwrap()
            .get("n");
        assert_eq!(states, 1, "{opening} opening: session states");
        index.pool().close().await;
        index.sessions_pool().close().await;
    }
    assert!(dir.path().join("index-sessions.sqlite").exists());
}
