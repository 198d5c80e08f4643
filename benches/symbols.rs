//! Symbol-store CPU costs: identifying uploads and building derived caches, on real fixtures.
//! Run: `cargo bench --bench symbols` (needs ../shared/fixtures).

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::symbols::derive::{build_payload, CacheKind};
use faultline::symbols::identify::identify;
use symbolic::debuginfo::Object;

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{}/../shared/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("symbols");
    for (label, rel) in [
        ("identify/elf-debug", "debug-files/linux/crash.debug"),
        ("identify/pdb", "debug-files/windows/crash.pdb"),
        ("identify/breakpad-xul", "debug-files/breakpad/xul.sym"),
    ] {
        let data = fixture(rel);
        group.bench_function(label, |b| b.iter(|| identify(&data, rel).unwrap()));
    }
    for (label, rel, kind) in [
        (
            "symcache/elf-debug",
            "debug-files/linux/crash.debug",
            CacheKind::SymCache,
        ),
        (
            "symcache/pdb",
            "debug-files/windows/crash.pdb",
            CacheKind::SymCache,
        ),
        (
            "symcache/breakpad-large",
            "debug-files/breakpad/large_symbol.sym",
            CacheKind::SymCache,
        ),
        (
            "cfi/elf-eh-frame",
            "debug-files/linux/crash",
            CacheKind::Cfi,
        ),
        ("cfi/pdb", "debug-files/windows/crash.pdb", CacheKind::Cfi),
    ] {
        let data = fixture(rel);
        group.bench_function(label, |b| {
            b.iter(|| {
                let object = Object::parse(&data).unwrap();
                build_payload(kind, &object).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
