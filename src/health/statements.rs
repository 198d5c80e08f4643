//! The shapes of the session writer's statements: rows in groups of a few fixed sizes, so the
//! database's prepared statements are reused instead of parsed again for every batch size.

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
}
