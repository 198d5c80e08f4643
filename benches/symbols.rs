//! Symbol-store CPU costs: identifying uploads and building derived caches (SymCache, CFI,
//! generated Breakpad `.sym`, SourceMapCache) and source map lookups, on real fixtures.
//! Run: `cargo bench --bench symbols` (needs ../shared/fixtures).

use criterion::{criterion_group, criterion_main, Criterion};
use faultline::symbols::breakpad_sym::generate;
use faultline::symbols::derive::{build_payload, CacheKind};
use faultline::symbols::identify::identify;
use symbolic::debuginfo::Object;
use symbolic_sourcemapcache::{SourceMapCache, SourceMapCacheWriter, SourcePosition};

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
    // Breakpad `.sym` generation (dump_syms), as the symbol server does on first request.
    for (label, rels) in [
        (
            "sym/pdb+pe",
            &[
                "debug-files/windows/crash.pdb",
                "debug-files/windows/crash.exe",
            ][..],
        ),
        (
            "sym/elf+debug",
            &["debug-files/linux/crash", "debug-files/linux/crash.debug"][..],
        ),
    ] {
        let inputs: Vec<_> = rels
            .iter()
            .map(|rel| {
                let path = std::path::PathBuf::from(format!(
                    "{}/../shared/fixtures/{rel}",
                    env!("CARGO_MANIFEST_DIR")
                ));
                let data = fixture(rel);
                let meta = identify(&data, rel).unwrap().remove(0).meta;
                (meta, path)
            })
            .collect();
        let out = tempfile::NamedTempFile::new().unwrap();
        group.bench_function(label, |b| {
            b.iter(|| {
                let inputs: Vec<_> = inputs
                    .iter()
                    .map(|(m, p)| (m.clone(), p.as_path()))
                    .collect();
                generate(&inputs, out.path()).unwrap()
            })
        });
    }
    // Source maps: the lookup cache of a pair, and lookups in it.
    let source = String::from_utf8(fixture("sourcemaps/symbolic/preact.module.js")).unwrap();
    let map = String::from_utf8(fixture("sourcemaps/symbolic/preact.module.js.map")).unwrap();
    group.bench_function("smcache/build-preact", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            SourceMapCacheWriter::new(&source, &map)
                .unwrap()
                .serialize(&mut out)
                .unwrap();
            out
        })
    });
    let mut cache = Vec::new();
    SourceMapCacheWriter::new(&source, &map)
        .unwrap()
        .serialize(&mut cache)
        .unwrap();
    let columns: Vec<u32> = (0..1000u32).map(|i| i * 10 % 9_900).collect();
    group.bench_function("smcache/1000-lookups-preact", |b| {
        b.iter(|| {
            let cache = SourceMapCache::parse(&cache).unwrap();
            columns
                .iter()
                .filter(|&&c| cache.lookup(SourcePosition::new(0, c)).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
