//! `faultline retention`: one retention run now (the server also runs one every
//! `retention.interval_secs`), with the configured policies or the ones the flags give;
//! `--dry-run` reports what would be deleted and deletes nothing.

use std::process::ExitCode;

use clap::Args;

use crate::app::App;
use crate::config::Config;
use crate::group::index::sessions::SESSION_MAX_AGE_SECS;
use crate::retention::{run as run_retention, RetentionPolicy, RetentionReport, RetentionStores};

/// `faultline retention` flags.
#[derive(Args)]
pub struct RetentionArgs {
    /// Report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete debug files no crash has used for this many days (0: keep them); default
    /// retention.symbols_unused_days.
    #[arg(long, value_name = "DAYS")]
    symbols_unused_days: Option<u64>,
    /// Delete crash payloads received more than this many days ago (0: keep them); default
    /// retention.payload_days.
    #[arg(long, value_name = "DAYS")]
    payload_days: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs retention once and prints the report.
pub async fn run(args: RetentionArgs, mut config: Config) -> anyhow::Result<ExitCode> {
    if let Some(days) = args.symbols_unused_days {
        config.retention.symbols_unused_days = days;
    }
    if let Some(days) = args.payload_days {
        config.retention.payload_days = days;
    }
    let policy = RetentionPolicy::from_config(&config.retention);
    let state = App::open(config).await?;
    let stores = RetentionStores {
        symbols: &state.symbols,
        objects: &*state.objects,
        index: &state.index,
        cluster: &state.cluster,
    };
    let now = crate::clock::now_unsigned();
    let report = run_retention(&stores, policy, now, args.dry_run).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `n` bytes for a person.
fn size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// The report as text: one section per kind, what was (or would be) deleted.
fn text(report: &RetentionReport) -> String {
    let mut out = String::new();
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    if report.dry_run {
        out.push_str("dry run: nothing was deleted\n");
    }
    match report.symbols_unused_days {
        Some(days) => {
            out.push_str(&format!(
                "debug files unused for {days} days: {verb} {}\n",
                report.symbol_file_count
            ));
            for file in &report.symbol_files {
                let used = file.last_used_at.map_or("never used".to_owned(), |t| {
                    format!("last used {}", date(t as i64))
                });
                out.push_str(&format!(
                    "  {} {} ({}, uploaded {}, {used})\n",
                    file.debug_id,
                    file.name,
                    size(file.size),
                    date(file.uploaded_at as i64)
                ));
            }
        }
        None => out.push_str("debug files: kept (retention.symbols_unused_days is 0)\n"),
    }
    match report.payload_days {
        Some(days) => {
            out.push_str(&format!(
                "crash payloads older than {days} days: {verb} {}\n",
                report.payload_count
            ));
            for payload in &report.payloads {
                out.push_str(&format!(
                    "  {} (received {}, {} files, {})\n",
                    payload.crash_id,
                    date(payload.received_at),
                    payload.files,
                    size(payload.bytes)
                ));
            }
        }
        None => out.push_str("crash payloads: kept (retention.payload_days is 0)\n"),
    }
    out.push_str(&format!(
        "leftovers of unfinished uploads: {verb} {}\n",
        report.leftover_count
    ));
    out.push_str(&format!(
        "session states past the {}-day update limit: {verb} {}\n",
        SESSION_MAX_AGE_SECS / 86_400,
        report.session_state_count
    ));
    let listed = report.symbol_files.len() + report.payloads.len();
    if listed < report.symbol_file_count + report.payload_count {
        out.push_str("(lists are cut at 1000 entries each; --json has the same lists)\n");
    }
    out.push_str(&format!("total: {verb} {}\n", size(report.bytes)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }
}
