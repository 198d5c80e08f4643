//! Warm-cache processing costs: a whole minidump through `Processor::process` (symbols already
//! parsed and cached in memory, as on a busy server), its JSON rendering, a 100-frame raw
//! symbolication request, and Sentry events (read, symbolicated and grouped by
//! `EventProcessor`: a JavaScript event against a source map, a native one against a PDB).
//! Run: `cargo bench --bench process` (needs ../shared/fixtures).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::config::{Config, VariablesScope};
use faultline::events::process::EventProcessor;
use faultline::events::Event;
use faultline::group::signature::SignatureRules;
use faultline::process::symbolicate::{symbolicate, SymbolicateRequest};
use faultline::process::Processor;
use faultline::store::FsStore;
use faultline::symbols::unpack::UnpackLimits;
use faultline::symbols::SymbolStore;

fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!(
        "{}/../shared/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (processor, store) = rt.block_on(async {
        let store = SymbolStore::new(
            Arc::new(FsStore::open(dir.path().join("store")).unwrap()),
            dir.path().join("tmp"),
            UnpackLimits {
                max_entries: 100,
                max_unpacked_bytes: 1 << 30,
            },
        )
        .unwrap();
        for rel in [
            "debug-files/linux/crash",
            "debug-files/linux/crash.debug",
            "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
            "symbols/breakpad/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym",
            "debug-files/windows/CrashWithException.pdb",
            "debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash",
        ] {
            let scratch = tempfile::tempdir_in(dir.path()).unwrap();
            store
                .ingest(
                    &fixture(rel),
                    rel,
                    scratch.path(),
                    &faultline::sourcemaps::ReleaseContext::default(),
                )
                .await;
        }
        // The webpack fixture's bundle and map, with a debug ID as sentry-cli injects it.
        let js_dir = tempfile::tempdir_in(dir.path()).unwrap();
        let mut js = std::fs::read(fixture("sourcemaps/symbolic/webpack/bundle.js")).unwrap();
        js.extend_from_slice(format!("\n//# debugId={WEBPACK_ID}\n").as_bytes());
        let mut map: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixture("sourcemaps/symbolic/webpack/bundle.js.map")).unwrap(),
        )
        .unwrap();
        map["debugId"] = serde_json::json!(WEBPACK_ID);
        std::fs::write(js_dir.path().join("bundle.js"), js).unwrap();
        std::fs::write(js_dir.path().join("bundle.js.map"), map.to_string()).unwrap();
        for name in ["bundle.js", "bundle.js.map"] {
            let scratch = tempfile::tempdir_in(dir.path()).unwrap();
            store
                .ingest(
                    &js_dir.path().join(name),
                    name,
                    scratch.path(),
                    &faultline::sourcemaps::ReleaseContext::default(),
                )
                .await;
        }
        // The crash generator's debug file, for its dumps with known variables.
        let scratch = tempfile::tempdir_in(dir.path()).unwrap();
        let crasher = format!(
            "{}/fixtures/minidumps/crasher.debug",
            env!("CARGO_MANIFEST_DIR")
        );
        store
            .ingest(
                std::path::Path::new(&crasher),
                "crasher.debug",
                scratch.path(),
                &faultline::sourcemaps::ReleaseContext::default(),
            )
            .await;
        let store = Arc::new(store);
        (
            Processor::from_config(&Config::default(), Arc::clone(&store)),
            store,
        )
    });
    let mut group = c.benchmark_group("process");
    for (label, rel) in [
        ("warm/linux-mini", "minidumps/rust-minidump/linux-mini.dmp"),
        ("warm/test-win-x86", "minidumps/rust-minidump/test.dmp"),
        (
            "warm/macos-inlines",
            "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
        ),
    ] {
        let dump = bytes::Bytes::from(std::fs::read(fixture(rel)).unwrap());
        rt.block_on(processor.process(dump.clone())).unwrap();
        group.bench_function(label, |b| {
            b.iter(|| rt.block_on(processor.process(dump.clone())).unwrap())
        });
        let crash = rt.block_on(processor.process(dump.clone())).unwrap();
        group.bench_function(format!("json/{}", label.trim_start_matches("warm/")), |b| {
            // The writer the server uses (`ingest::processed_json`).
            b.iter(|| sonic_rs::to_vec(&crash).unwrap())
        });
    }
    // What variables cost a warm crash: the same dump with `processing.variables = "off"` and
    // with the default (the crashing thread's frames), every table already in memory.
    let mut off = Config::default();
    off.processing.variables = VariablesScope::Off;
    let without = Processor::from_config(&off, Arc::clone(&store));
    for (label, path) in [
        (
            "linux-mini",
            fixture("minidumps/rust-minidump/linux-mini.dmp"),
        ),
        (
            "c-O2",
            format!(
                "{}/fixtures/minidumps/variables/c-O2.dmp",
                env!("CARGO_MANIFEST_DIR")
            )
            .into(),
        ),
    ] {
        let dump = bytes::Bytes::from(std::fs::read(path).unwrap());
        let with = rt.block_on(processor.process(dump.clone())).unwrap();
        assert!(!with.variables.is_empty(), "{label}: variables were read");
        rt.block_on(without.process(dump.clone())).unwrap();
        group.bench_function(format!("variables/{label}/off"), |b| {
            b.iter(|| rt.block_on(without.process(dump.clone())).unwrap())
        });
        group.bench_function(format!("variables/{label}/crashing-thread"), |b| {
            b.iter(|| rt.block_on(processor.process(dump.clone())).unwrap())
        });
        // The same under load: 32 dumps at once, so the pool's threads stay busy and the
        // figure is the processing per dump rather than one dump's latency (which also pays
        // the pool's wake-ups, longer the longer a job runs).
        for (mode, processor) in [("off", &without), ("crashing-thread", &processor)] {
            group.bench_function(format!("variables/{label}/{mode}/32-at-once"), |b| {
                b.iter(|| {
                    let all = (0..32).map(|_| processor.process(dump.clone()));
                    for crash in rt.block_on(futures::future::join_all(all)) {
                        crash.unwrap();
                    }
                })
            });
        }
        // Reading the variables alone (the part of the above that `off` skips).
        let parsed = minidump::Minidump::read(dump.clone()).unwrap();
        let threads: Vec<usize> = with.state.requesting_thread.into_iter().collect();
        let ids = faultline::process::variables::modules_of(&with.state, &threads);
        let tables: std::collections::HashMap<_, _> = ids
            .into_iter()
            .filter_map(|id| Some((id, rt.block_on(processor.modules().variables().get(id))?)))
            .collect();
        group.bench_function(format!("variables/{label}/read"), |b| {
            b.iter(|| {
                faultline::process::variables::read(
                    &parsed,
                    &with.state,
                    &threads,
                    &tables,
                    &with.facts.thread_stacks,
                )
            })
        });
    }
    // What a crash adds to its index row for the correlations (computed and serialized on the
    // crash path): a Windows dump's OS, CPU and crashing-thread module versions.
    let pipeline =
        faultline::pipeline::Pipeline::from_config(&Config::default(), Arc::clone(&store)).unwrap();
    let dump =
        bytes::Bytes::from(std::fs::read(fixture("minidumps/rust-minidump/test.dmp")).unwrap());
    let report = rt
        .block_on(pipeline.run(dump, &Default::default(), VariablesScope::default()))
        .unwrap();
    group.bench_function("facts/test-win-x86", |b| {
        use faultline::group::ProcessedReport;
        b.iter(|| serde_json::to_string(&report.facts()).unwrap())
    });
    // 100 frames spread over CrashWithException.exe's functions.
    let frames: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"instruction_addr": format!("{:#x}", 0x140001000u64 + (i * 0x13) % 0x1c0)}))
        .collect();
    let request: SymbolicateRequest = serde_json::from_value(serde_json::json!({
        "stacktraces": [{"frames": frames}],
        "modules": [{"type": "pe", "debug_id": "F535C5FB2AE84BB8AA206C30BE566C5A1", "image_addr": "0x140000000", "image_size": 36864}]
    }))
    .unwrap();
    rt.block_on(symbolicate(
        processor.modules(),
        request.clone(),
        far_deadline(),
    ));
    group.bench_function("symbolicate/100-frames", |b| {
        b.iter(|| {
            rt.block_on(symbolicate(
                processor.modules(),
                request.clone(),
                far_deadline(),
            ))
        })
    });
    bench_events(&rt, &mut group, &processor, &store);
    group.finish();
}

const WEBPACK_ID: &str = "2f259f80-58b7-44cb-d7cd-ed1e3d26f28a";

/// Events as SDKs send them, from JSON text to a grouped report (caches warm).
fn bench_events(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    processor: &Processor,
    store: &SymbolStore,
) {
    let rules = SignatureRules::new(&[], &[], &[]).unwrap();
    let events = EventProcessor {
        modules: processor.modules(),
        symbols_wait: processor.symbols_wait(),
        sourcemaps: Some(store.sourcemaps()),
        rules: &rules,
        max_file_bytes: 1 << 30,
    };
    let url = "http://example.com/static/bundle.js";
    // 20 frames alternating between the bundle's two functions.
    let js_frames: Vec<_> = (0..20)
        .map(|i| serde_json::json!({"abs_path": url, "lineno": 1, "colno": if i % 2 == 0 { 44 } else { 79 }, "in_app": true}))
        .collect();
    let js = serde_json::to_vec(&serde_json::json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "wat", "stacktrace": {"frames": js_frames}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": url, "debug_id": WEBPACK_ID}]},
    }))
    .unwrap();
    let native_frames: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"instruction_addr": format!("{:#x}", 0x140001000u64 + (i * 0x13) % 0x1c0)}))
        .collect();
    let native = serde_json::to_vec(&serde_json::json!({
        "platform": "native",
        "exception": {"values": [{"type": "SIGSEGV", "stacktrace": {"frames": native_frames}}]},
        "debug_meta": {"images": [{"type": "pe", "debug_id": "F535C5FB2AE84BB8AA206C30BE566C5A1", "code_file": "CrashWithException.exe", "image_addr": "0x140000000", "image_size": 36864}]},
    }))
    .unwrap();
    let raw: SymbolicateRequest = serde_json::from_value(serde_json::json!({
        "stacktraces": [{"frames": native_frames.iter().rev().collect::<Vec<_>>()}],
        "modules": [{"type": "pe", "debug_id": "F535C5FB2AE84BB8AA206C30BE566C5A1", "image_addr": "0x140000000", "image_size": 36864}]
    }))
    .unwrap();
    let native_found = rt
        .block_on(symbolicate(processor.modules(), raw, far_deadline()))
        .stacktraces[0]
        .frames
        .iter()
        .filter(|f| f.status.as_str() == "symbolicated")
        .count();
    let expected = std::collections::HashMap::from([
        ("event/js-20-frames", 20),
        ("event/native-100-frames", native_found),
    ]);
    for (label, json) in [
        ("event/js-20-frames", &js),
        ("event/native-100-frames", &native),
    ] {
        let run = || {
            let event = Event::from_slice(json).unwrap();
            rt.block_on(events.process(event, 1)).unwrap()
        };
        let report = run();
        let found = report.stacks[0]
            .frames
            .iter()
            .filter(|f| f.status == "resolved" || f.status == "symbolicated")
            .count();
        // Every JavaScript frame resolves; the native frames as many as `/symbolicate` finds
        // for the same addresses (some of the spread addresses fall between functions).
        assert_eq!(found, expected[label], "{label}");
        group.bench_function(label, |b| b.iter(run));
    }
    bench_apple_report(rt, group, &events);
}

/// An Apple `.crash` report of 10 threads x 50 frames in the macOS `crash` binary (its dSYM
/// stored), from text to a grouped report.
fn bench_apple_report(
    rt: &tokio::runtime::Runtime,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    events: &EventProcessor<'_>,
) {
    let base = 0x1_0a5e_1000u64;
    let mut text = String::from(
        "Process:         crash [4242]\nCode Type:       X86-64\nReport Version:  104\n\n\
         Exception Type:  EXC_BAD_ACCESS (SIGSEGV)\n\
         Exception Codes: KERN_INVALID_ADDRESS at 0x0000000000000088\n\n",
    );
    for thread in 0..10 {
        let crashed = if thread == 0 { " Crashed" } else { "" };
        text.push_str(&format!("Thread {thread}{crashed}:\n"));
        for frame in 0..50u64 {
            let addr = base + 0xd20 + (frame * 0x97 + thread * 0x1f) % 0xcf00;
            text.push_str(&format!("{frame}   crash   {addr:#018x} 0x0 + 0\n"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "Binary Images:\n       {base:#x} -        {:#x} +crash x86_64 (1.0) <67e9247c814e392ba027dbde6748fcbf> /Users/USER/crash\n",
        base + 0xeffff
    ));
    let run = || {
        let report = faultline::apple_reports::parse(text.as_bytes()).unwrap();
        rt.block_on(events.process(report.to_event(), 1)).unwrap()
    };
    let report = run();
    let found = report
        .stacks
        .iter()
        .flat_map(|s| &s.frames)
        .filter(|f| f.status == "symbolicated")
        .count();
    assert!(
        found > 400,
        "most of the 500 frames fall in functions: {found}"
    );
    group.bench_function("apple-report/10x50-frames", |b| b.iter(run));
}

criterion_group!(benches, bench);
criterion_main!(benches);

/// A deadline no symbol load in these benches reaches (nothing is fetched upstream).
fn far_deadline() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(3600)
}
