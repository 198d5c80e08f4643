//! Warm-cache processing costs: a whole minidump through `Processor::process` (symbols already
//! parsed and cached in memory, as on a busy server), its JSON rendering, and a 100-frame
//! raw symbolication request. Run: `cargo bench --bench process` (needs ../shared/fixtures).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::config::Config;
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
    let processor = rt.block_on(async {
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
        Processor::from_config(&Config::default(), Arc::new(store))
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
            b.iter(|| serde_json::to_vec(&crash).unwrap())
        });
    }
    // 100 frames spread over CrashWithException.exe's functions.
    let frames: Vec<_> = (0..100)
        .map(|i| serde_json::json!({"instruction_addr": format!("{:#x}", 0x140001000u64 + (i * 0x13) % 0x1c0)}))
        .collect();
    let request: SymbolicateRequest = serde_json::from_value(serde_json::json!({
        "stacktraces": [{"frames": frames}],
        "modules": [{"type": "pe", "debug_id": "F535C5FB2AE84BB8AA206C30BE566C5A1", "image_addr": "0x140000000", "image_size": 36864}]
    }))
    .unwrap();
    rt.block_on(symbolicate(processor.modules(), request.clone()));
    group.bench_function("symbolicate/100-frames", |b| {
        b.iter(|| rt.block_on(symbolicate(processor.modules(), request.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
