//! Sorts the shipped frame pattern lists (src/classify/fault_frame_skip.txt and
//! src/group/signature_*.txt) at build time, so a run of faultline does not parse 250 regexes
//! before it reads a dump: `$OUT_DIR/shipped_patterns.rs` holds each list's lines with what
//! they match (src/classify/pattern_lines.rs, the same code that sorts configured lines).
//!
//! With the `crasher` feature it also compiles the crash generator's C program with known
//! variables (fixtures/minidumps/variables/variables.c) at -O0 and -O2 and links both into the
//! examples (see fixtures/minidumps/README.md).

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

/// The C program of the variables fixtures, once per optimization level, as objects linked
/// into the crash generator (entry points `crash_variables_c_O0` and `crash_variables_c_O2`).
fn compile_variables_programs(dir: &str) {
    const SOURCE: &str = "fixtures/minidumps/variables/variables.c";
    println!("cargo:rerun-if-changed={SOURCE}");
    for level in ["O0", "O2"] {
        let object = format!("{dir}/variables-c-{level}.o");
        let status = std::process::Command::new("gcc")
            .args(["-c", "-g", &format!("-{level}"), "-fPIE", "-std=c11"])
            .arg(format!("-DENTRY=crash_variables_c_{level}"))
            .args([SOURCE, "-o", &object])
            .status()
            .unwrap_or_else(|e| panic!("gcc (needed by the crasher feature): {e}"));
        assert!(status.success(), "gcc failed on {SOURCE} at -{level}");
        println!("cargo:rustc-link-arg-examples={object}");
    }
}
