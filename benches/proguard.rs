//! De-obfuscating Java frames through a large ProGuard mapping: a 50 MB R8-style mapping
//! (44,000 classes, ten methods each, every third method with an inlined call) is stored, its
//! ProguardCache built once (timed, printed), then a 500-frame obfuscated stack is
//! de-obfuscated through `jvm::symbolicate_jvm` with the cache warm (criterion).
//!
//! `cargo bench --bench proguard`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use faultline::jvm::{symbolicate_jvm, SymbolicateJvmRequest};
use faultline::process::modules::ModuleCache;
use faultline::process::source::SymbolSource;
use faultline::store::FsStore;
use faultline::symbols::unpack::UnpackLimits;
use faultline::symbols::SymbolStore;

const CLASSES: usize = 44_000;
const METHODS: usize = 10;

/// The obfuscated name of class `i`: base-26 letters, as R8 names them.
fn obfuscated(mut i: usize) -> String {
    let mut name = String::new();
    loop {
        name.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return format!("z.{name}");
        }
    }
}

/// A mapping of [`CLASSES`] classes: method `m` of class `c` covers obfuscated lines
/// `m*10+1..=m*10+10`, originally `100+m*20..`; every third one has a call inlined at its
/// first line.
fn mapping() -> String {
    let mut out = String::with_capacity(52 << 20);
    out.push_str("# compiler: R8\n");
    for c in 0..CLASSES {
        out.push_str(&format!(
            "com.example.feature{}.SomeQuiteLongClassName{c} -> {}:\n",
            c % 97,
            obfuscated(c)
        ));
        out.push_str(&format!(
            "# {{\"id\":\"sourceFile\",\"fileName\":\"SomeQuiteLongClassName{c}.kt\"}}\n"
        ));
        for m in 0..METHODS {
            let (start, orig) = (m * 10 + 1, 100 + m * 20);
            if m % 3 == 0 {
                out.push_str(&format!(
                    "    {start}:{start}:void helper{m}(java.lang.String):{}:{} -> {}\n",
                    orig + 500,
                    orig + 500,
                    (b'a' + m as u8) as char
                ));
                out.push_str(&format!(
                    "    {start}:{start}:void method{m}(int,java.lang.String):{orig} -> {}\n",
                    (b'a' + m as u8) as char
                ));
                out.push_str(&format!(
                    "    {}:{}:void method{m}(int,java.lang.String):{}:{} -> {}\n",
                    start + 1,
                    start + 9,
                    orig + 1,
                    orig + 9,
                    (b'a' + m as u8) as char
                ));
            } else {
                out.push_str(&format!(
                    "    {start}:{}:void method{m}(int,java.lang.String):{orig}:{} -> {}\n",
                    start + 9,
                    orig + 9,
                    (b'a' + m as u8) as char
                ));
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = mapping();
    let path = dir.path().join("mapping.txt");
    std::fs::write(&path, &text).unwrap();
    let store = SymbolStore::new(
        Arc::new(FsStore::open(dir.path().join("store")).unwrap()),
        dir.path().join("tmp"),
        UnpackLimits {
            max_entries: 100,
            max_unpacked_bytes: 1 << 30,
        },
    )
    .unwrap();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    let started = Instant::now();
    let report = rt.block_on(store.ingest(
        &path,
        "mapping.txt",
        scratch.path(),
        &faultline::sourcemaps::ReleaseContext::default(),
    ));
    let uuid = serde_json::to_value(&report).unwrap()[0]["file"]["debug_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = started.elapsed();
    let modules = ModuleCache::new(
        SymbolSource::from(Arc::new(store)),
        2 << 30,
        Duration::from_secs(3600),
    );
    // 500 frames over the mapping's classes, methods and lines, oldest first.
    let frames: Vec<_> = (0..500usize)
        .map(|i| {
            let class = (i * 7919) % CLASSES;
            let method = (i * 31) % METHODS;
            let line = method * 10 + 1 + (i % 10);
            serde_json::json!({"function": ((b'a' + method as u8) as char).to_string(), "module": obfuscated(class), "lineno": line})
        })
        .collect();
    let request: SymbolicateJvmRequest = serde_json::from_value(serde_json::json!({
        "stacktraces": [{"frames": frames}],
        "modules": [{"uuid": uuid, "type": "proguard"}],
    }))
    .unwrap();
    let started = Instant::now();
    let first = rt.block_on(symbolicate_jvm(&modules, request.clone()));
    let first_call = started.elapsed();
    let out = &first.stacktraces[0].frames;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(
        out.iter().all(|f| f.module.starts_with("com.example.")),
        "every frame de-obfuscated"
    );
    assert!(out.len() > 500, "inlined calls expanded: {}", out.len());
    println!(
        "mapping {:.1} MB: identified and stored in {:.0} ms; first request (cache built, read) {:.0} ms; {} frames out",
        text.len() as f64 / 1e6,
        stored.as_secs_f64() * 1e3,
        first_call.as_secs_f64() * 1e3,
        out.len()
    );
    let mut group = c.benchmark_group("proguard");
    group.bench_function("500-frames/50MB-mapping", |b| {
        b.iter(|| rt.block_on(symbolicate_jvm(&modules, request.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
