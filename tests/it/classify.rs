//! Classification of real dumps: every dump the crash generator wrote (fixtures/minidumps,
//! one per class) and the ../shared fixture dumps whose crash reason makes the class clear.

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{fixture, generated, symbol_store};
use faultline::config::{ClassifyConfig, Config};
use faultline::pipeline::{CrashReport, Pipeline};
use faultline::store::FsStore;
use faultline::symbols::unpack::UnpackLimits;
use faultline::symbols::SymbolStore;

/// A pipeline over a fresh store holding `symbols`, with `classify` for classification.
async fn pipeline(symbols: &[PathBuf], classify: ClassifyConfig) -> (Pipeline, tempfile::TempDir) {
    let (store, dir) = symbol_store(symbols).await;
    let config = Config {
        classify,
        ..Config::default()
    };
    (Pipeline::from_config(&config, store).unwrap(), dir)
}

async fn run(pipeline: &Pipeline, dump: PathBuf) -> CrashReport {
    pipeline
        .run(
            std::fs::read(&dump).unwrap().into(),
            &Default::default(),
            Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", dump.display()))
}

/// dump name, class, the frame to blame, exploitability (docs/CLASSIFIERS.md's rule table).
const GENERATED: &[(&str, &str, &str, &str)] = &[
    (
        "null-read",
        "null-read",
        "crasher::linux::null_read",
        "none",
    ),
    (
        "null-write",
        "null-write",
        "crasher::linux::null_write",
        "none",
    ),
    (
        "null-exec",
        "null-exec",
        "crasher::linux::null_exec",
        "high",
    ),
    ("wild-read", "wild-read", "crasher::linux::wild_read", "low"),
    (
        "wild-write",
        "wild-write",
        "crasher::linux::wild_write",
        "high",
    ),
    (
        "wild-exec",
        "wild-exec",
        "crasher::linux::wild_exec",
        "high",
    ),
    (
        "exec-on-stack",
        "exec-on-stack",
        "crasher::linux::exec_on_stack",
        "high",
    ),
    (
        "exec-on-heap",
        "exec-on-heap",
        "crasher::linux::exec_on_heap",
        "high",
    ),
    (
        "write-to-readonly",
        "write-to-readonly",
        "crasher::linux::write_to_readonly",
        "high",
    ),
    (
        "non-canonical-address",
        "non-canonical-address",
        "crasher::linux::non_canonical_address",
        "interesting",
    ),
    (
        "stack-overflow",
        "stack-overflow",
        "crasher::linux::stack_overflow",
        "none",
    ),
    (
        "stack-buffer-overrun",
        "stack-buffer-overrun",
        "crasher::linux::stack_buffer_overrun",
        "high",
    ),
    ("abort", "abort", "crasher::linux::abort", "none"),
    (
        "assertion",
        "assertion",
        "crasher::linux::assertion",
        "none",
    ),
    (
        "cxx-exception",
        "cxx-exception",
        "crasher::linux::cxx_throw",
        "none",
    ),
    (
        "rust-panic",
        "rust-panic",
        "crasher::linux::rust_panic",
        "none",
    ),
    (
        "out-of-memory",
        "out-of-memory",
        "crasher::linux::out_of_memory",
        "none",
    ),
    (
        "heap-corruption",
        "heap-corruption",
        "crasher::linux::heap_corruption",
        "high",
    ),
    (
        "divide-by-zero",
        "divide-by-zero",
        "crasher::linux::divide_by_zero",
        "none",
    ),
    (
        "illegal-instruction",
        "illegal-instruction",
        "crasher::linux::illegal_instruction",
        "none",
    ),
    ("bus-error", "bus-error", "crasher::linux::bus_error", "low"),
    (
        "breakpoint",
        "breakpoint",
        "crasher::linux::breakpoint",
        "none",
    ),
    (
        "dump-requested",
        "dump-requested",
        "crasher::linux::crash",
        "none",
    ),
    (
        "ascii-read",
        "wild-read",
        "crasher::linux::ascii_read",
        "high",
    ),
    (
        "null-read-wx-heap",
        "null-read",
        "crasher::linux::null_read",
        "high",
    ),
    (
        "wild-read-call",
        "wild-read",
        "crasher::linux::wild_read_call",
        "high",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_generated_dump_gets_its_class_fault_frame_and_rating() {
    let (pipeline, _dir) = pipeline(&[generated("crasher.debug")], ClassifyConfig::default()).await;
    let mut failures = Vec::new();
    for (dump, class, frame, rating) in GENERATED {
        let report = run(&pipeline, generated(&format!("{dump}.dmp"))).await;
        let c = &report.classification;
        let got = (
            c.fault_class.as_str(),
            c.fault_frame
                .as_ref()
                .and_then(|f| f.function.as_deref())
                .unwrap_or("-"),
            c.exploitability.rating.as_str(),
        );
        if got != (*class, *frame, *rating) {
            failures.push(format!("{dump}: got {got:?} ({})", c.evidence.rule));
        }
    }
    assert!(
        failures.is_empty(),
        "misclassified:\n{}",
        failures.join("\n")
    );
    // Every class the generator can produce is covered.
    let dumps = std::fs::read_dir(generated("")).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "dmp")
    });
    assert_eq!(dumps.count(), GENERATED.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_explains_the_decision() {
    let (pipeline, _dir) = pipeline(&[generated("crasher.debug")], ClassifyConfig::default()).await;

    let json = run(&pipeline, generated("wild-write.dmp")).await.to_json();
    let c = &json["classification"];
    assert_eq!(c["fault_class"], "wild-write");
    let e = &c["evidence"];
    assert_eq!(
        (e["code"].as_str(), e["crash_reason"].as_str()),
        (Some("0xb"), Some("SIGSEGV / SEGV_MAPERR"))
    );
    assert_eq!(
        (e["access"].as_str(), e["access_source"].as_str()),
        (Some("write"), Some("instruction"))
    );
    assert_eq!(e["address"], "0x123456780000");
    assert!(
        e["address_memory"].is_null(),
        "the wild address is unmapped"
    );
    assert_eq!(e["instruction_memory"]["kind"], "image");
    assert_eq!(e["stack_memory"]["kind"], "stack");
    assert!(e["instruction"].as_str().unwrap().starts_with("mov"), "{e}");
    assert!(e["registers"]["rip"].as_str().unwrap().starts_with("0x"));
    assert_eq!(c["exploitability"]["reasons"][0], "write to a wild address");

    let json = run(&pipeline, generated("assertion.dmp")).await.to_json();
    let e = &json["classification"]["evidence"];
    assert_eq!(e["frames"][0]["function"], "__assert_fail");
    assert_eq!(e["code"], "0x6");

    let json = run(&pipeline, generated("write-to-readonly.dmp"))
        .await
        .to_json();
    let region = &json["classification"]["evidence"]["address_memory"];
    assert_eq!(
        (region["readable"].as_bool(), region["writable"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        region["path"].as_str().unwrap().ends_with("crasher"),
        "{region}"
    );

    let json = run(&pipeline, generated("null-read.dmp")).await.to_json();
    let c = &json["classification"];
    assert_eq!(c["evidence"]["near_null"], true);
    // The pointer itself was 0x10 (no null base register plus offset), so nothing is adjusted.
    assert!(c["signals"]["adjusted_address"].is_null());
    assert!(c["signals"]["possible_bit_flips"].is_array());
    // The read went through an inlined core::ptr::read_volatile: skipped, not blamed.
    assert_eq!(c["fault_frame"]["function"], "crasher::linux::null_read");
    assert_eq!(c["fault_frame"]["index"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_app_rules_and_extra_skip_patterns_come_from_configuration() {
    let classify = ClassifyConfig {
        skip_frames: vec!["^crasher::linux::(null_read|crash)$".into()],
        in_app_modules: vec!["^crasher$".into()],
        in_app_paths: vec![],
    };
    let (pipeline, _dir) = pipeline(&[generated("crasher.debug")], classify).await;
    let c = run(&pipeline, generated("null-read.dmp"))
        .await
        .classification;
    let fault = c.fault_frame.unwrap();
    assert_eq!(
        fault.function.as_deref(),
        Some("crasher::linux::main"),
        "{fault:?}"
    );
    let in_app = c.in_app_frame.unwrap();
    assert_eq!(
        (in_app.index, in_app.module.as_deref()),
        (0, Some("crasher"))
    );

    let bad = ClassifyConfig {
        in_app_paths: vec!["[unclosed".into()],
        ..ClassifyConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SymbolStore::new(
        Arc::new(FsStore::open(dir.path().join("s")).unwrap()),
        dir.path().join("t"),
        UnpackLimits {
            max_entries: 1,
            max_unpacked_bytes: 1,
        },
    )
    .unwrap();
    let config = Config {
        classify: bad,
        ..Config::default()
    };
    let err = Pipeline::from_config(&config, Arc::new(store))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("classify.in_app_paths") && err.contains("[unclosed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_fixture_dumps_with_clear_crash_reasons() {
    let cases: &[(&str, Vec<PathBuf>, &str, &str)] = &[
        // EXCEPTION_ACCESS_VIOLATION_WRITE at 0x45: a write through a null struct pointer.
        (
            "minidumps/rust-minidump/test.dmp",
            vec![fixture("symbols/breakpad")],
            "null-write",
            "`anonymous namespace'::CrashFunction",
        ),
        (
            "minidumps/rust-minidump/linux-mini.dmp",
            vec![fixture("debug-files/linux/crash.debug")],
            "null-write",
            "crash",
        ),
        (
            "minidumps/symbolic/crash_linux.dmp",
            vec![fixture("minidumps/symbolic/crash_linux")],
            "null-write",
            "(anonymous namespace)::crash()",
        ),
        (
            "minidumps/symbolic/crash_macos.dmp",
            vec![fixture(
                "minidumps/symbolic/crash_macos.dSYM/Contents/Resources/DWARF/crash_macos",
            )],
            "null-write",
            "(anonymous namespace)::crash()",
        ),
        // sadness-generator's raise_segfault writes to a wild kernel-half address.
        (
            "minidumps/rust-minidump/pipeline-inlines-macos-segv.dmp",
            vec![fixture(
                "symbols/breakpad/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym",
            )],
            "wild-write",
            "sadness_generator::raise_segfault",
        ),
        (
            "minidumps/rust-minidump/invalid-parameter.dmp",
            vec![],
            "abort",
            "-",
        ),
        // A Crashpad dump whose libsystem_c annotation says "abort() called".
        (
            "minidumps/rust-minidump/simple-crashpad.dmp",
            vec![],
            "abort",
            "-",
        ),
    ];
    for (dump, symbols, class, frame) in cases {
        let (pipeline, _dir) = pipeline(symbols, ClassifyConfig::default()).await;
        let c = run(&pipeline, fixture(dump)).await.classification;
        assert_eq!(
            c.fault_class.as_str(),
            *class,
            "{dump}: {}",
            c.evidence.rule
        );
        let blamed = c
            .fault_frame
            .as_ref()
            .and_then(|f| f.function.as_deref())
            .unwrap_or("-");
        assert_eq!(blamed, *frame, "{dump}");
    }
}
