//! The index's databases: the one its URL names (crashes, groups, projects, the ingest queue…)
//! and where session counts (release health) are written. On Postgres both are the one
//! database. On SQLite, which has one writer per file, the session tables are a file of their
//! own beside the index (`NAME-sessions.sqlite`): session updates outnumber crashes a hundred
//! to one, and in one file every session batch held the connection crash recording commits on
//! (docs/PERFORMANCE.md, "Sessions in their own file").

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Row};

use super::{Dialect, IndexError};

/// The session tables, moved out of an index opened before they had a file of their own.
const SESSION_TABLES: [&str; 6] = [
    "session_hours",
    "session_states",
    "session_users",
    "session_releases",
    "session_user_sets",
    "session_user_sketches",
];

/// A pool on `url`, with the per-connection settings SQLite needs.
pub(super) async fn connect(url: &str, dialect: Dialect, max: u32) -> Result<AnyPool, sqlx::Error> {
    let sqlite = dialect == Dialect::Sqlite;
    AnyPoolOptions::new()
        .max_connections(max)
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
        .await
}

/// Opens (creating and migrating) where session counts are written, for the index at `url`
/// whose pool is `index` (migrated): on SQLite the file beside it, with any session rows the
/// index still holds moved there; on Postgres the index's own pool (a pool of its own there made
/// the session writer's batches hold their transactions several times longer beside a crash
/// load, and fall behind the updates: docs/PERFORMANCE.md).
pub(super) async fn open_sessions(
    url: &str,
    dialect: Dialect,
    index: &AnyPool,
) -> Result<AnyPool, IndexError> {
    match dialect {
        Dialect::Postgres => Ok(index.clone()),
        Dialect::Sqlite => {
            let url = sessions_url(url);
            // One connection: SQLite's one writer per file (and an in-memory database).
            let sessions = connect(&url, dialect, 1).await?;
            sqlx::migrate!("migrations/sqlite-sessions")
                .run(&sessions)
                .await?;
            move_session_rows(index, &url).await?;
            Ok(sessions)
        }
    }
}

/// The URL of the session file beside the SQLite index at `url`: `…/index.sqlite?mode=rwc`
/// gives `…/index-sessions.sqlite?mode=rwc` (a named in-memory index, a second name); a
/// private in-memory index (`sqlite::memory:`) gets a private in-memory one.
pub(super) fn sessions_url(url: &str) -> String {
    let (base, options) = match url.split_once('?') {
        Some((base, options)) => (base, Some(options)),
        None => (url, None),
    };
    if base.ends_with(":memory:") {
        return url.to_owned();
    }
    let cut = base.rfind(['/', ':']).map_or(0, |i| i + 1);
    let (folder, file) = base.split_at(cut);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    match options {
        Some(options) => format!("{folder}{stem}-sessions.sqlite?{options}"),
        None => format!("{folder}{stem}-sessions.sqlite"),
    }
}

/// Moves the session rows an index from before the session file holds into the file at
/// `sessions_url`, then drops the index's session tables (which its migrations 0017 and 0018
/// create: a new index has them empty, and they are only dropped).
///
/// Safe to interrupt: rows are copied in one transaction, keys already in the file are kept
/// (a second attempt after a kill between the copy and the drops copies nothing twice), and the
/// tables are dropped only after the copy committed. Runs before the index serves anything.
async fn move_session_rows(index: &AnyPool, sessions_url: &str) -> Result<(), IndexError> {
    let mut conn = index.acquire().await?;
    let mut present = Vec::new();
    for table in SESSION_TABLES {
        let found =
            sqlx::query("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_some() {
            present.push(table);
        }
    }
    let mut rows = 0i64;
    for table in &present {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM main.{table}"))
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")?;
        rows += n;
    }
    if rows > 0 {
        let file = session_file(sessions_url)?;
        sqlx::query("ATTACH DATABASE $1 AS moving")
            .bind(file.to_string_lossy().into_owned())
            .execute(&mut *conn)
            .await?;
        let copied = copy_tables(&mut conn, &present).await;
        sqlx::query("DETACH DATABASE moving")
            .execute(&mut *conn)
            .await?;
        copied?;
        tracing::info!(rows, "session counts moved to their own file");
    }
    for table in present {
        sqlx::query(&format!("DROP TABLE main.{table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Copies `tables` from the index into the attached session file, column by column by name,
/// in one transaction.
async fn copy_tables(conn: &mut sqlx::AnyConnection, tables: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for table in tables {
        let columns: Vec<String> =
            sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("name"))
                .collect::<Result<_, _>>()?;
        let columns = columns.join(", ");
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO moving.{table} ({columns}) SELECT {columns} FROM main.{table}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The path of the session file a SQLite URL names.
fn session_file(url: &str) -> Result<PathBuf, IndexError> {
    let options = SqliteConnectOptions::from_str(url)?;
    Ok(Path::new(options.get_filename()).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::sessions_url;

    #[test]
    fn the_session_file_sits_beside_the_index() {
        assert_eq!(
            sessions_url("sqlite:///data/faultline/index.sqlite?mode=rwc"),
            "sqlite:///data/faultline/index-sessions.sqlite?mode=rwc"
        );
        assert_eq!(
            sessions_url("sqlite://relative/crashes.db"),
            "sqlite://relative/crashes-sessions.sqlite"
        );
        assert_eq!(sessions_url("sqlite:index"), "sqlite:index-sessions.sqlite");
        assert_eq!(sessions_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            sessions_url("sqlite://x?mode=memory&cache=shared"),
            "sqlite://x-sessions.sqlite?mode=memory&cache=shared"
        );
    }
}
