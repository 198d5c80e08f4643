//! `faultline process DUMP [--symbols DIR]... [--symbols-source ID]... [--json|--text|--markdown]
//! [--threads all]`: processes one minidump, or one Apple crash report (`.crash`, `.ips`),
//! without a server.
//! Each DIR (a Breakpad tree, a dSYM, a build folder of native debug files) is walked and its
//! files identified exactly as uploads are, then read in place (nothing is stored). Each
//! `--symbols-source` (a configured source's ID or a preset: `microsoft`, `mozilla`…) is asked
//! for the modules the folders lack, and what it sends is kept in a local cache folder
//! (`--symbols-cache`) for the next run. With neither, the configured store is used. Exit 1 with
//! a message for anything that is not a processable minidump.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use minidump::Module;
use symbolic::common::DebugId;

use super::report::{self, Format, ReportStyle, Threads};
use crate::config::{Config, SourceConfig};
use crate::pipeline::Pipeline;
use crate::process::source::SymbolSource;
use crate::symbols::local::LocalSymbols;
use crate::symbols::unpack::UnpackLimits;
use crate::symbols::SymbolStore;
use crate::upstream::Upstream;

/// Arguments of `faultline process`.
#[derive(Args)]
pub struct ProcessArgs {
    /// The minidump, or an Apple crash report (`.crash` text, `.ips` JSON).
    dump: PathBuf,
    /// Folders (or files, or archives) of debug files; may be repeated. Without it, the
    /// configured symbol store is used.
    #[arg(long = "symbols", value_name = "DIR")]
    symbols: Vec<PathBuf>,
    /// Upstream symbol sources to ask for what the folders lack: the ID of a source in the
    /// configuration's `[[symbols.sources]]`, or a preset (`microsoft`, `mozilla`, `nvidia`,
    /// `intel`, `amd`, `electron`, `chromium`, `unity`, `ubuntu-debuginfod`,
    /// `fedora-debuginfod`, `debian-debuginfod`); may be repeated, asked in order.
    #[arg(long = "symbols-source", value_name = "ID")]
    symbols_sources: Vec<String>,
    /// Where files fetched from `--symbols-source` are kept between runs (default: the user's
    /// cache folder, `~/.cache/faultline/symbols`).
    #[arg(long = "symbols-cache", value_name = "DIR")]
    symbols_cache: Option<PathBuf>,
    /// Print minidump-stackwalk-compatible JSON (with faultline's additions).
    #[arg(long, conflicts_with_all = ["text", "markdown"])]
    json: bool,
    /// Print a readable report: the verdict first, then the crashing thread (the default).
    #[arg(long, conflicts_with = "markdown")]
    text: bool,
    /// Print the report as Markdown, for pasting into a ticket.
    #[arg(long)]
    markdown: bool,
    /// Which threads the report shows.
    #[arg(long, value_enum, default_value = "crashing")]
    threads: Threads,
    /// Color the text report: `auto` when stdout is a terminal and NO_COLOR is unset.
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
}

/// When to color the text report.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Lists the files under `path` (itself when it is a file) with their names relative to its
/// parent, in name order. Entries are typed from the directory listing; only symbolic links
/// are followed with a `stat` of their own.
fn walk(path: &Path, name: &str, out: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    walk_typed(path, meta.file_type(), name, out)
}

fn walk_typed(
    path: &Path,
    kind: std::fs::FileType,
    name: &str,
    out: &mut Vec<(PathBuf, String)>,
) -> anyhow::Result<()> {
    if kind.is_symlink() {
        return walk(path, name, out);
    }
    if kind.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            walk_typed(&entry.path(), entry.file_type()?, &child, out)?;
        }
    } else if kind.is_file() {
        out.push((path.to_owned(), name.to_owned()));
    }
    Ok(())
}

/// The debug IDs of the dump's modules (`DebugId`'s string form), or of an Apple crash
/// report's images; `None` when the module list cannot be read (then every file is kept, and
/// processing reports what is wrong).
fn wanted_debug_ids(dump: &[u8]) -> Option<HashSet<String>> {
    if let Some(report) = apple_report(dump) {
        let ids = report
            .images
            .iter()
            .filter_map(|i| i.uuid.parse::<DebugId>().ok());
        return Some(ids.map(|id| id.to_string()).collect());
    }
    let dump = minidump::Minidump::read(dump).ok()?;
    let modules = dump.get_stream::<minidump::MinidumpModuleList>().ok()?;
    Some(
        modules
            .iter()
            .filter_map(|m| m.debug_identifier())
            .map(|id| id.to_string())
            .collect(),
    )
}

/// The debug ID a Breakpad symbol tree's path names, if it is one: `NAME/DEBUGID/NAME.sym`,
/// where a `.pdb` NAME drops its extension in the file name (`app.pdb/…/app.sym`).
fn layout_debug_id(name: &str) -> Option<DebugId> {
    let mut parts = name.rsplit('/');
    let (file, id, folder) = (parts.next()?, parts.next()?, parts.next()?);
    let module = folder.strip_suffix(".pdb").unwrap_or(folder);
    if file != format!("{module}.sym") {
        return None;
    }
    DebugId::from_breakpad(id).ok()
}

/// The debug files under `dirs` that the dump's modules need, read in place (archives unpacked
/// into `scratch`).
fn local_symbols(
    dirs: &[PathBuf],
    dump: &[u8],
    limits: UnpackLimits,
    scratch: &mut Option<tempfile::TempDir>,
) -> anyhow::Result<LocalSymbols> {
    let mut files = Vec::new();
    for dir in dirs {
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        walk(dir, &name, &mut files)?;
    }
    // Only what the dump's modules need: files in a Breakpad tree (`NAME/DEBUGID/NAME.sym`)
    // for other modules are not even opened, and every other file is identified in place and
    // kept only when a module wants it.
    let wanted = wanted_debug_ids(dump);
    files.retain(|(_, name)| match (layout_debug_id(name), &wanted) {
        (Some(id), Some(wanted)) => wanted.contains(&id.to_string()),
        _ => true,
    });
    let mut local = LocalSymbols::default();
    for (path, name) in files {
        let unpack_into = || {
            let parent = match scratch {
                Some(scratch) => scratch,
                None => scratch.insert(tempfile::tempdir()?),
            };
            Ok(tempfile::tempdir_in(parent.path())?.keep())
        };
        for report in local.add(&path, &name, unpack_into, wanted.as_ref(), limits) {
            tracing::debug!(file = %report.name, status = ?report.status, reason = ?report.reason, "symbols");
        }
    }
    Ok(local)
}

/// The `--symbols-source` sources (configured ones by ID, else presets by name), keeping what
/// they send in the `--symbols-cache` folder.
async fn cached_sources(
    args: &ProcessArgs,
    config: &Config,
    limits: UnpackLimits,
) -> anyhow::Result<SymbolSource> {
    let sources: Vec<SourceConfig> = args
        .symbols_sources
        .iter()
        .map(|id| {
            config
                .symbols
                .sources
                .iter()
                .find(|s| &s.id == id)
                .cloned()
                .unwrap_or_else(|| SourceConfig {
                    id: id.clone(),
                    ..SourceConfig::default()
                })
        })
        .collect();
    let folder = match &args.symbols_cache {
        Some(folder) => folder.clone(),
        None => default_cache_folder()?,
    };
    let objects = crate::store::FsStore::open(folder.join("store"))
        .with_context(|| format!("cannot use the symbol cache {}", folder.display()))?;
    let store = Arc::new(SymbolStore::new(
        Arc::new(objects),
        folder.join("tmp"),
        limits,
    )?);
    let upstream = Upstream::open(&sources, Arc::clone(&store))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(SymbolSource::Store(store, upstream))
}

/// `$XDG_CACHE_HOME/faultline/symbols`, else `~/.cache/faultline/symbols`.
fn default_cache_folder() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .context("no cache folder: set --symbols-cache, XDG_CACHE_HOME or HOME")?;
    Ok(base.join("faultline").join("symbols"))
}

/// Runs `faultline process`.
pub async fn run(args: ProcessArgs, config: Config) -> anyhow::Result<ExitCode> {
    let dump = std::fs::read(&args.dump)
        .with_context(|| format!("cannot read the minidump {}", args.dump.display()))?;
    let limits = UnpackLimits {
        max_entries: config.limits.max_archive_entries,
        max_unpacked_bytes: config.limits.max_archive_unpacked_bytes,
    };
    // Archives among the --symbols files are unpacked into a temporary folder, made for the
    // first one, and read from there while the dump is processed; it is removed when the
    // command ends.
    let mut scratch: Option<tempfile::TempDir> = None;
    let upstream = match args.symbols_sources.is_empty() {
        true => None,
        false => Some(cached_sources(&args, &config, limits).await?),
    };
    let pipeline = match (args.symbols.is_empty(), upstream) {
        (true, Some(upstream)) => Pipeline::from_config(&config, upstream)?,
        (true, None) => {
            let objects = crate::store::open(&config.storage)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let store = SymbolStore::new(objects, config.storage.data_dir.join("tmp"), limits)?;
            Pipeline::from_config(&config, Arc::new(store))?
        }
        (false, upstream) => {
            let local = local_symbols(&args.symbols, &dump, limits, &mut scratch)?;
            Pipeline::from_config(
                &config,
                SymbolSource::Local(Arc::new(local), upstream.map(Box::new)),
            )?
        }
    };
    if let Some(report) = apple_report(&dump) {
        let processor = crate::events::process::EventProcessor {
            modules: pipeline.processor.modules(),
            symbols_wait: pipeline.processor.symbols_wait(),
            sourcemaps: None,
            rules: &pipeline.signatures,
            max_file_bytes: config.limits.max_upload_bytes,
        };
        let processed = processor
            .process(report.to_event(), 0)
            .await
            .with_context(|| format!("cannot process {}", args.dump.display()))?;
        let json = serde_json::to_vec(&processed)?;
        let view = crate::pipeline::CrashView::read(&json)?;
        print_report(&args, &processed, &view)?;
        return Ok(ExitCode::SUCCESS);
    }
    let crash = pipeline
        .run(
            dump.into(),
            &Default::default(),
            config.processing.variables,
        )
        .await
        .with_context(|| format!("cannot process {}", args.dump.display()))?;
    print_report(&args, &crash, &crash.view())?;
    // The command ends here and the process with it: freeing the symbol caches and the
    // processed crash first would only delay the exit.
    std::mem::forget((pipeline, crash));
    Ok(ExitCode::SUCCESS)
}

/// An Apple crash report, when `file` is one (never a minidump).
fn apple_report(file: &[u8]) -> Option<crate::apple_reports::AppleReport> {
    if file.starts_with(b"MDMP") {
        return None;
    }
    crate::apple_reports::parse(file).ok()
}

/// Prints the processed crash as `--json`, `--text` or `--markdown` asked.
fn print_report(
    args: &ProcessArgs,
    crash: &impl serde::Serialize,
    view: &crate::pipeline::CrashView<'_>,
) -> anyhow::Result<()> {
    if args.json {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, crash)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let color = match args.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        let style = ReportStyle {
            format: if args.markdown {
                Format::Markdown
            } else {
                Format::Text
            },
            threads: args.threads,
            color: color && !args.markdown,
        };
        print!("{}", report::render(view, style));
    }
    Ok(())
}
