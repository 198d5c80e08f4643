//! What upstream symbol sources cost a crash (issue 31's targets). A real 31-module Windows
//! dump (rust-minidump's `invalid-parameter.dmp`), every module's Breakpad file on a loopback
//! symbol server that answers each request after 50 ms:
//! - cold: nothing stored; all 31 files are downloaded, stored and their caches built;
//! - warm: the next crash with the same modules (no download);
//! - absent: a source that has none of them, second crash onwards (negative cache), against
//!   a crash whose modules were all uploaded, with "no symbols" remembered by the module cache
//!   (the default) and with that memory off (every crash lists the store and reads the
//!   negative cache).
//!
//! Run: `cargo bench --bench upstream`; prints a table (medians).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use bytes::Bytes;
use faultline::config::{SourceConfig, SourceKind, SourceLayout};
use faultline::process::modules::ModuleCache;
use faultline::process::source::SymbolSource;
use faultline::process::{ProcessLimits, Processor};
use faultline::store::FsStore;
use faultline::symbols::unpack::UnpackLimits;
use faultline::symbols::SymbolStore;
use faultline::upstream::Upstream;
use minidump::Module;

const DUMP: &str = "../shared/fixtures/minidumps/rust-minidump/invalid-parameter.dmp";
const DELAY: Duration = Duration::from_millis(50);

/// `(path, .sym text)` of each module: a MODULE line and one function covering it.
fn sym_files(dump: &[u8]) -> Vec<(String, String)> {
    let dump = minidump::Minidump::read(dump).unwrap();
    let modules = dump.get_stream::<minidump::MinidumpModuleList>().unwrap();
    modules
        .iter()
        .filter_map(|m| {
            let id = m.debug_identifier()?.breakpad().to_string();
            let file = m.debug_file()?;
            let file = file.rsplit(['\\', '/']).next()?.to_owned();
            let stem = file.strip_suffix(".pdb").unwrap_or(&file).to_owned();
            let size = m.size();
            Some((
                format!("{file}/{id}/{stem}.sym"),
                format!("MODULE windows x86 {id} {file}\nFUNC 0 {size:x} 0 {stem}_function\n"),
            ))
        })
        .collect()
}

/// A symbol server answering every request after [`DELAY`]: the files of `files`, or 404.
async fn serve(files: Vec<(String, String)>) -> String {
    let files: Arc<std::collections::HashMap<String, String>> =
        Arc::new(files.into_iter().collect());
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let files = Arc::clone(&files);
        async move {
            tokio::time::sleep(DELAY).await;
            let path = uri.path().trim_start_matches("/store/").to_owned();
            match files.get(&path) {
                Some(text) => text.clone().into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/store/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A processor over a fresh store under `dir` with one source at `url` (none when `None`).
async fn processor(dir: &Path, url: Option<&str>, missing_ttl: Duration) -> Processor {
    let objects = Arc::new(FsStore::open(dir.join("store")).unwrap());
    let limits = UnpackLimits {
        max_entries: 1000,
        max_unpacked_bytes: 1 << 30,
    };
    let store = Arc::new(SymbolStore::new(objects, dir.join("tmp"), limits).unwrap());
    let sources: Vec<SourceConfig> = url
        .map(|url| SourceConfig {
            id: "upstream".into(),
            kind: Some(SourceKind::Http),
            url: Some(url.into()),
            layout: Some(SourceLayout::Native),
            ..SourceConfig::default()
        })
        .into_iter()
        .collect();
    let upstream = Upstream::open(&sources, Arc::clone(&store)).await.unwrap();
    let modules = ModuleCache::new(SymbolSource::Store(store, upstream), 1 << 30, missing_ttl);
    Processor::new(
        modules,
        ProcessLimits {
            max_dump_bytes: 1 << 30,
            max_threads: 10_000,
            max_modules: 10_000,
            time_budget: Duration::from_secs(60),
        },
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time(processor: &Processor, dump: &Bytes, runs: usize) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        processor.process(dump.clone()).await.unwrap();
        samples.push(started.elapsed());
    }
    median(samples)
}

async fn uploaded_everything(dir: &Path, dump: &Bytes, files: &[(String, String)]) -> Processor {
    let processor = processor(dir, None, Duration::from_secs(300)).await;
    let objects = Arc::new(FsStore::open(dir.join("store")).unwrap());
    let limits = UnpackLimits {
        max_entries: 1000,
        max_unpacked_bytes: 1 << 30,
    };
    let store = SymbolStore::new(objects, dir.join("tmp"), limits).unwrap();
    for (path, text) in files {
        let file = dir.join("upload.sym");
        std::fs::write(&file, text).unwrap();
        store
            .ingest(&file, path, &dir.join("tmp"), &Default::default())
            .await;
    }
    processor.process(dump.clone()).await.unwrap();
    processor
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dump =
            Bytes::from(std::fs::read(DUMP).expect("../shared/fixtures is beside the project"));
        let files = sym_files(&dump);
        let having = serve(files.clone()).await;
        let lacking = serve(Vec::new()).await;

        let mut cold = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let processor = processor(dir.path(), Some(&having), Duration::from_secs(300)).await;
            let started = Instant::now();
            let crash = processor.process(dump.clone()).await.unwrap();
            cold.push(started.elapsed());
            found = crash
                .modules
                .iter()
                .filter(|m| m.origin.as_deref() == Some("upstream"))
                .count();
        }
        let dir = tempfile::tempdir().unwrap();
        let warm_processor = processor(dir.path(), Some(&having), Duration::from_secs(300)).await;
        warm_processor.process(dump.clone()).await.unwrap();
        let warm = time(&warm_processor, &dump, 50).await;

        let dir = tempfile::tempdir().unwrap();
        let uploaded = time(
            &uploaded_everything(dir.path(), &dump, &files).await,
            &dump,
            50,
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let absent_processor =
            processor(dir.path(), Some(&lacking), Duration::from_secs(300)).await;
        absent_processor.process(dump.clone()).await.unwrap();
        let absent = time(&absent_processor, &dump, 50).await;
        let dir = tempfile::tempdir().unwrap();
        let uncached_processor = processor(dir.path(), Some(&lacking), Duration::ZERO).await;
        uncached_processor.process(dump.clone()).await.unwrap();
        let uncached = time(&uncached_processor, &dump, 50).await;

        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!(
            "modules with debug IDs: {}, found upstream on a cold start: {found}",
            files.len()
        );
        println!("| case | median |");
        println!("|---|---|");
        println!(
            "| cold: {} files downloaded (50 ms each), stored, caches built | {} |",
            files.len(),
            ms(median(cold))
        );
        println!(
            "| warm: same modules again, nothing downloaded | {} |",
            ms(warm)
        );
        println!(
            "| every module uploaded (the reference) | {} |",
            ms(uploaded)
        );
        println!(
            "| no source has them, module cache remembers (default) | {} |",
            ms(absent)
        );
        println!(
            "| no source has them, module cache off (store listed, negative cache read) | {} |",
            ms(uncached)
        );
    });
}
