//! The variables cache, cold and warm: for each debug file, the time to build its variables
//! table from DWARF or a PDB (what the first crash through the module pays, once, on a task of its own),
//! the stored size, the time to read the stored table back (a node that did not build it), the
//! peak memory of each (the process's, reset in between), the table's weight in the memory
//! cache, and a warm lookup (the scopes at an address). Prints a table.
//!
//! Run: `cargo bench --bench variables_cache -- [FILE…]` (default: the crash generator's
//! fixtures/minidumps/crasher.debug; `benches/large_symbols.sh` builds a debug-info faultline,
//! `target/release-debug/faultline`, with over 100 MB of DWARF, to pass here; a PDB's column
//! "debug info" is the whole file).

use std::time::Instant;

use faultline::variables::VariablesTable;
use symbolic::common::ByteView;
use symbolic::debuginfo::Object;

fn main() {
    let mut files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        files.push(format!(
            "{}/fixtures/minidumps/crasher.debug",
            env!("CARGO_MANIFEST_DIR")
        ));
    }
    println!("| debug file | debug info | cold build | functions | types | stored (zstd) | peak memory, build | read back | peak memory, read | in memory | warm lookup |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for path in files {
        let view = ByteView::open(&path).expect("a readable debug file");
        let object = Object::parse(&view).expect("a debug file symbolic reads");
        let dwarf_bytes = dwarf_size(&object);
        let started = Instant::now();
        let table = faultline::variables::table_of(&object).expect("debug info that reads");
        let built = started.elapsed();
        let stored = table.encode();
        let (functions, types) = (table.functions.len(), table.types.len());
        let build_peak = peak_memory_mib();
        drop(table);
        drop(object);
        drop(view);
        reset_peak_memory();
        let started = Instant::now();
        let back = VariablesTable::decode(&stored).expect("its own encoding");
        let read_back = started.elapsed();
        // A warm lookup: the scope chain at the middle of every function, averaged.
        let addresses: Vec<u64> = back
            .functions
            .iter()
            .filter_map(|f| f.scope.ranges.first().map(|r| r.0 + (r.1 - r.0) / 2))
            .collect();
        let started = Instant::now();
        let mut found = 0usize;
        for _ in 0..10 {
            for address in &addresses {
                if let Some(function) = back.function_at(*address) {
                    found += function.scope.chain_at(*address).len();
                }
            }
        }
        let lookups = (addresses.len() * 10).max(1);
        let per_lookup = started.elapsed().as_nanos() as f64 / lookups as f64;
        assert!(
            found >= addresses.len(),
            "every function finds its own scopes"
        );
        println!(
            "| {} | {:.1} MiB | {} | {} | {} | {:.2} MiB | {} MiB | {} | {} MiB | {} MiB | {:.0} ns |",
            std::path::Path::new(&path)
                .file_name()
                .unwrap()
                .to_string_lossy(),
            dwarf_bytes as f64 / 1048576.0,
            duration(built),
            functions,
            types,
            stored.len() as f64 / 1048576.0,
            build_peak,
            duration(read_back),
            peak_memory_mib(),
            back.weight() / 1048576,
            per_lookup
        );
    }
}

/// Seconds for a long build, milliseconds for a small one.
fn duration(elapsed: std::time::Duration) -> String {
    match elapsed.as_secs_f64() {
        s if s >= 1.0 => format!("{s:.2} s"),
        s => format!("{:.1} ms", s * 1000.0),
    }
}

/// The uncompressed size of the DWARF sections variables are read from.
fn dwarf_size(object: &Object<'_>) -> usize {
    use symbolic::debuginfo::dwarf::Dwarf;
    let sections: &dyn Dwarf<'_> = match object {
        Object::Elf(elf) => elf,
        Object::MachO(macho) => macho,
        Object::Pdb(pdb) => return pdb.data().len(),
        _ => return 0,
    };
    [
        "debug_info",
        "debug_abbrev",
        "debug_str",
        "debug_loclists",
        "debug_loc",
        "debug_rnglists",
        "debug_ranges",
        "debug_addr",
        "debug_line_str",
        "debug_str_offsets",
    ]
    .iter()
    .filter_map(|name| sections.section(name))
    .map(|s| s.data.len())
    .sum()
}

/// Starts this process's peak resident memory count over (Linux: `/proc/self/clear_refs`).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak resident memory (Linux), in MiB.
fn peak_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
