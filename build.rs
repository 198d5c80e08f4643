//! Sorts the shipped frame pattern lists (src/classify/fault_frame_skip.txt and
//! src/group/signature_*.txt) at build time, so a run of faultline does not parse 250 regexes
//! before it reads a dump: `$OUT_DIR/shipped_patterns.rs` holds each list's lines with what
//! they match (src/classify/pattern_lines.rs, the same code that sorts configured lines).
//!
//! With the `crasher` feature it also compiles the crash generator's programs with known
//! variables (fixtures/minidumps/variables/variables.{c,cpp,rs}) at -O0 and -O2 and links them
//! into the examples (see fixtures/minidumps/README.md).

#[path = "src/classify/pattern_lines.rs"]
#[allow(dead_code)]
mod pattern_lines;

use std::fmt::Write;

use pattern_lines::{analyze, split_module, LineKind};

const LISTS: [(&str, &str); 4] = [
    ("src/classify/fault_frame_skip.txt", "FAULT_FRAME_SKIP"),
    ("src/group/signature_sentinels.txt", "SIGNATURE_SENTINELS"),
    ("src/group/signature_prefixes.txt", "SIGNATURE_PREFIXES"),
    ("src/group/signature_irrelevant.txt", "SIGNATURE_IRRELEVANT"),
];

fn main() {
    println!("cargo:rerun-if-changed=src/classify/pattern_lines.rs");
    let mut out = String::new();
    for (path, name) in LISTS {
        println!("cargo:rerun-if-changed={path}");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        writeln!(
            out,
            "/// `{path}`, sorted.\npub static {name}: &[ShippedLine] = &["
        )
        .unwrap();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (module, pattern) = split_module(line);
            if let Err(e) = regex_syntax::parse(pattern) {
                panic!("{path}: invalid pattern {pattern:?}: {e}");
            }
            let kind = match analyze(pattern) {
                LineKind::Names(names) => format!("ShippedKind::Names(&{names:?})"),
                LineKind::Prefixes(prefixes) => format!("ShippedKind::Prefixes(&{prefixes:?})"),
                LineKind::Regex { gate: Some(gate) } => {
                    format!("ShippedKind::Regex(Some(&{gate:?}))")
                }
                LineKind::Regex { gate: None } => "ShippedKind::Regex(None)".to_owned(),
            };
            writeln!(
                out,
                "    ShippedLine {{ module: {module}, pattern: {pattern:?}, kind: {kind} }},"
            )
            .unwrap();
        }
        out.push_str("];\n");
    }
    let dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{dir}/shipped_patterns.rs"), out).expect("OUT_DIR is writable");
    if std::env::var_os("CARGO_FEATURE_CRASHER").is_some() {
        compile_variables_programs(&dir);
    }
}

/// The programs of the variables fixtures (C, C++, Rust), once per optimization level, as
/// objects linked into the crash generator (entry points `crash_variables_{c,cpp,rs}_{O0,O2}`).
fn compile_variables_programs(dir: &str) {
    const DIR: &str = "fixtures/minidumps/variables";
    for (language, compiler, flags) in [
        ("c", "gcc", &["-std=c11"][..]),
        ("cpp", "g++", &["-std=c++17", "-fno-exceptions"][..]),
    ] {
        let source = format!("{DIR}/variables.{language}");
        println!("cargo:rerun-if-changed={source}");
        for level in ["O0", "O2"] {
            let object = format!("{dir}/variables-{language}-{level}.o");
            let status = std::process::Command::new(compiler)
                .args(["-c", "-g", &format!("-{level}"), "-fPIE"])
                .args(flags)
                .arg(format!("-DENTRY=crash_variables_{language}_{level}"))
                .args([&source, "-o", &object])
                .status()
                .unwrap_or_else(|e| panic!("{compiler} (needed by the crasher feature): {e}"));
            assert!(
                status.success(),
                "{compiler} failed on {source} at -{level}"
            );
            println!("cargo:rustc-link-arg-examples={object}");
        }
    }
    // The linker reads these objects after the libraries rustc names (and after it switched
    // back to shared ones): the static C++ runtime, and what it needs of libc, again.
    for library in ["-l:libstdc++.a", "-l:libm.a", "-l:libc.a", "-l:libgcc.a"] {
        println!("cargo:rustc-link-arg-examples={library}");
    }
    compile_rust_variables_program(dir, DIR);
}

/// The Rust program, each optimization level its own crate (so their symbols differ), against
/// the same standard library the crash generator links.
fn compile_rust_variables_program(dir: &str, sources: &str) {
    let source = format!("{sources}/variables.rs");
    println!("cargo:rerun-if-changed={source}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    for (level, opt) in [("O0", "0"), ("O2", "2")] {
        let object = format!("{dir}/variables-rs-{level}.o");
        let mut command = std::process::Command::new(&rustc);
        command
            .args(["--edition", "2021", "--crate-type", "lib", "--emit"])
            .arg(format!("obj={object}"))
            .args([
                "--crate-name",
                &format!("variables_rs_{}", level.to_lowercase()),
            ])
            .args(["--target", &target, "-g", "-C", "panic=abort", "-C"])
            .arg(format!("opt-level={opt}"))
            .args(["-C", "relocation-model=pie", "-C", "codegen-units=1"])
            // A null read must fault (SIGSEGV), not be caught by a debug assertion first.
            .args(["-C", "debug-assertions=off"]);
        if level == "O2" {
            command.args(["--cfg", "optimized"]);
        }
        let status = command
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("rustc: {e}"));
        assert!(
            status.success(),
            "rustc failed on {source} at opt-level {opt}"
        );
        println!("cargo:rustc-link-arg-examples={object}");
    }
}
