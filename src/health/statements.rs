//! The shapes of the session writer's statements: rows in groups of a few fixed sizes, so the
//! database's prepared statements are reused instead of parsed again for every batch size; and
//! statements sent together as one [`Script`].

use sqlx::any::AnyRow;

use crate::group::index::{anonymous, Dialect};

/// Rows one multi-row statement names: one of these sizes, largest first.
const STATEMENT_SIZES: [usize; 3] = [64, 8, 1];

/// Rows in groups of the `STATEMENT_SIZES`, largest first.
pub fn statement_chunks<T>(mut rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    for size in STATEMENT_SIZES {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            chunks.push(chunk);
            rows = rest;
        }
    }
    chunks
}

/// `head` + `rows` groups of `columns` numbered placeholders + `tail`.
pub fn multi_row(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 5);
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", row * columns + column + 1));
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `count` numbered placeholders from `$first`, comma-separated (an `IN (…)` list).
pub fn placeholders(first: usize, count: usize) -> String {
    let marks: Vec<String> = (first..first + count).map(|i| format!("${i}")).collect();
    marks.join(", ")
}

/// Values for `IN (…)` lists of two shapes only (8 or 64): chunks of 64, the last padded with
/// its own last value up to 8 or 64 (a repeated value changes no `IN`).
pub fn in_list_chunks<T: Clone>(values: &[T]) -> Vec<Vec<T>> {
    values
        .chunks(64)
        .map(|chunk| {
            let size = if chunk.len() <= 8 { 8 } else { 64 };
            let mut list = chunk.to_vec();
            let last = chunk[chunk.len() - 1].clone();
            list.resize(size, last);
            list
        })
        .collect()
}

/// A value a [`Script`]'s statement binds.
pub enum Bound {
    /// An integer.
    Int(i64),
    /// Text, or NULL.
    Text(Option<String>),
}

impl From<i64> for Bound {
    fn from(n: i64) -> Bound {
        Bound::Int(n)
    }
}

impl From<String> for Bound {
    fn from(text: String) -> Bound {
        Bound::Text(Some(text))
    }
}

impl From<&str> for Bound {
    fn from(text: &str) -> Bound {
        Bound::Text(Some(text.to_owned()))
    }
}

impl From<Option<String>> for Bound {
    fn from(text: Option<String>) -> Bound {
        Bound::Text(text)
    }
}

impl From<Option<&str>> for Bound {
    fn from(text: Option<&str>) -> Bound {
        Bound::Text(text.map(str::to_owned))
    }
}

/// Statements that need nothing from one another's answers, sent together: on SQLite as one
/// script, a single hand-off to the database's thread instead of one (and its two wake-ups) per
/// statement, which beside a crash load was most of what a session update cost; on Postgres,
/// whose prepared statements hold one statement each, one after another. Each statement numbers
/// its own parameters from `$1`.
pub struct Script {
    statements: Vec<(String, Vec<Bound>)>,
    together: bool,
}

impl Script {
    /// An empty script, its statements sent as one on SQLite when `together`. A script is
    /// prepared as one text, so every mix of statements is a text of its own in the
    /// connection's statement cache: the few statements of a small batch (a steady pace) come
    /// in few mixes and are found there; the many mixes of large batches would be parsed again
    /// each time, costing more than the hand-offs they save (a large batch has few hand-offs
    /// per update anyway).
    pub fn new(together: bool) -> Script {
        Script {
            statements: Vec::new(),
            together,
        }
    }

    /// Adds a statement and its values, in the order of its parameters.
    pub fn push(&mut self, sql: String, binds: Vec<Bound>) {
        self.statements.push((sql, binds));
    }

    /// Runs the statements in order, in `connection`'s transaction; the rows they return, in
    /// order.
    pub async fn run(
        self,
        connection: &mut sqlx::AnyConnection,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        if self.statements.is_empty() {
            return Ok(Vec::new());
        }
        if self.together && Dialect::of_connection(connection) == Dialect::Sqlite {
            // Anonymous parameters bind in order across a script's statements.
            let texts: Option<Vec<String>> = self
                .statements
                .iter()
                .map(|(sql, _)| anonymous(sql))
                .collect();
            if let Some(texts) = texts {
                let sql = texts.join(";\n");
                let binds = self.statements.into_iter().flat_map(|(_, binds)| binds);
                return bind_all(sqlx::query(&sql), binds)
                    .fetch_all(connection)
                    .await;
            }
        }
        let mut rows = Vec::new();
        for (sql, binds) in self.statements {
            let sql = Dialect::of_connection(connection).statement(sql);
            rows.extend(
                bind_all(sqlx::query(&sql), binds)
                    .fetch_all(&mut *connection)
                    .await?,
            );
        }
        Ok(rows)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_all(mut query: AnyQuery<'_>, binds: impl IntoIterator<Item = Bound>) -> AnyQuery<'_> {
    for bound in binds {
        query = match bound {
            Bound::Int(n) => query.bind(n),
            Bound::Text(text) => query.bind(text),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_have_two_shapes_and_keep_every_value() {
        let values: Vec<u32> = (0..75).collect();
        let lists = in_list_chunks(&values);
        assert_eq!(lists.iter().map(Vec::len).collect::<Vec<_>>(), [64, 64]);
        let mut seen: Vec<u32> = lists.concat();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, values);
        assert_eq!(in_list_chunks(&[7u32])[0], [7; 8]);
        assert!(in_list_chunks::<u32>(&[]).is_empty());
    }

    #[tokio::test]
    async fn a_script_runs_its_statements_in_order_and_returns_their_rows() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let mut connection = pool.acquire().await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .execute(&mut *connection)
            .await
            .unwrap();
        let mut script = Script::new(true);
        script.push(
            multi_row("INSERT INTO t (k, v) VALUES ", 2, 2, " RETURNING k, v"),
            vec![
                Bound::Int(1),
                "one".into(),
                Bound::Int(2),
                Bound::Text(None),
            ],
        );
        // Inserts nothing (k = 1 exists): returns nothing.
        script.push(
            "INSERT INTO t (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING RETURNING k, v"
                .to_owned(),
            vec![Bound::Int(1), "again".into()],
        );
        // Numbered out of order: the script falls back to one statement at a time.
        script.push(
            "UPDATE t SET v = $2 WHERE k = $1 RETURNING k, v".to_owned(),
            vec![Bound::Int(2), "two".into()],
        );
        let rows = script.run(&mut connection).await.unwrap();
        use sqlx::Row;
        let seen: Vec<(i64, Option<String>)> = rows
            .iter()
            .map(|row| (row.get("k"), row.get("v")))
            .collect();
        assert_eq!(
            seen,
            [(1, Some("one".into())), (2, None), (2, Some("two".into()))]
        );

        // In order, the same statements go as one script (one round trip) and mean the same.
        let mut script = Script::new(true);
        for k in [3i64, 4] {
            script.push(
                "INSERT INTO t (k, v) VALUES ($1, $2) RETURNING k".to_owned(),
                vec![Bound::Int(k), Bound::from(format!("v{k}"))],
            );
        }
        script.push(
            "UPDATE t SET v = $1 WHERE k = $2 RETURNING k".to_owned(),
            vec!["four".into(), Bound::Int(4)],
        );
        let keys: Vec<i64> = script
            .run(&mut connection)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("k"))
            .collect();
        assert_eq!(keys, [3, 4, 4]);
        let v: String = sqlx::query_scalar("SELECT v FROM t WHERE k = 4")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(v, "four");
    }
}
