//! Breakpad `.sym` files generated from native debug files: compared record by record with the
//! `.sym` files dump_syms wrote for the same inputs (../shared's references, from symbolic's
//! test fixtures), and used by the real minidump-stackwalk (`--symbols-url` pointed at
//! faultline) to walk dumps to the same frames faultline finds.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{fixture_bytes, generated, generated_bytes, tool_present, TestServer};
use serde_json::Value;

/// The records of a `.sym` file that two generators can be compared on.
#[derive(Default)]
struct SymRecords {
    module: String,
    /// FUNC address → (size, name); the name is empty for `FUNC m` (identical code folded:
    /// several functions at one address, and generators may pick any of their names).
    funcs: BTreeMap<u64, (u64, String)>,
    /// PUBLIC addresses.
    publics: BTreeSet<u64>,
    /// `STACK CFI INIT` address → size.
    cfi_inits: BTreeMap<u64, u64>,
    /// Every `STACK …` line.
    stack: BTreeSet<String>,
    /// Line records (address, size, line) under any FUNC.
    lines: usize,
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text, 16).unwrap_or_else(|_| panic!("not hex: {text:?}"))
}

fn records(text: &str) -> SymRecords {
    let mut out = SymRecords::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        // FUNC and PUBLIC may carry `m` (several names at one address) before the address.
        let at = |i: usize| {
            if fields.get(1) == Some(&"m") {
                i + 1
            } else {
                i
            }
        };
        match fields[0] {
            "MODULE" => out.module = line.to_owned(),
            "FUNC" => {
                let name = if fields[1] == "m" {
                    String::new()
                } else {
                    fields[at(4)..].join(" ")
                };
                out.funcs
                    .insert(hex(fields[at(1)]), (hex(fields[at(2)]), name));
            }
            "PUBLIC" => {
                out.publics.insert(hex(fields[at(1)]));
            }
            "STACK" => {
                if fields[1] == "CFI" && fields[2] == "INIT" {
                    out.cfi_inits.insert(hex(fields[3]), hex(fields[4]));
                }
                out.stack.insert(line.to_owned());
            }
            first if first.chars().all(|c| c.is_ascii_hexdigit()) && fields.len() == 4 => {
                out.lines += 1
            }
            _ => {}
        }
    }
    out
}

/// Names compared as dump_syms' versions differ in spelling them: the qualified name before
/// the parameter list, without whitespace (`T *,U` and `T*, U`; newer versions also keep a
/// parameter's top-level `const`, older ones a template's return type before its name, which
/// is why the reference may be longer); older versions wrote `<name omitted>` for some.
fn same_name(generated: &str, reference: &str) -> bool {
    fn base(name: &str) -> String {
        let name = name
            .split_whitespace()
            .collect::<String>()
            .replace("`anonymousnamespace'", "(anonymousnamespace)");
        let body = name.strip_suffix("const").unwrap_or(&name);
        if !body.ends_with(')') {
            return body.to_owned();
        }
        // Cut the parameter list: the '(' that matches the last ')'.
        let mut depth = 0;
        for (i, c) in body.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        return body[..i].to_owned();
                    }
                }
                _ => {}
            }
        }
        body.to_owned()
    }
    reference == "<name omitted>"
        || generated.is_empty()
        || reference.is_empty()
        || base(reference).ends_with(&base(generated))
}

/// Every FUNC of `reference` is one of `generated` with the same extent, and all but a few
/// (names of hand-written assembly: `__SEH_prolog4` against the older `_SEH_prolog4`) have the
/// same name.
fn same_functions(generated: &SymRecords, reference: &SymRecords) {
    assert_eq!(generated.funcs.len(), reference.funcs.len());
    let mut renamed = Vec::new();
    for (address, (size, name)) in &reference.funcs {
        let (gen_size, gen_name) = &generated.funcs[address];
        assert_eq!(gen_size, size, "FUNC {address:x}");
        if !same_name(gen_name, name) {
            renamed.push(format!("{address:x}: {gen_name} / {name}"));
        }
    }
    assert!(renamed.len() * 20 <= reference.funcs.len(), "{renamed:#?}");
}

/// GET the generated `.sym` of a module from the server.
async fn fetch_sym(server: &TestServer, debug_file: &str, breakpad_id: &str) -> String {
    let stem = debug_file.strip_suffix(".pdb").unwrap_or(debug_file);
    let response = server
        .anonymous
        .get(server.url(&format!("/symbols/{debug_file}/{breakpad_id}/{stem}.sym")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{debug_file} {breakpad_id}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_sym_files_match_dump_syms_references() {
    let server = TestServer::start().await;
    for rel in [
        "debug-files/windows/crash.pdb",
        "debug-files/windows/crash.exe",
        "debug-files/macos/crash",
        "debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash",
        "debug-files/linux/crash",
        "debug-files/linux/crash.debug",
    ] {
        let (status, body) = server.upload_fixture(rel).await;
        assert_eq!(status, 200, "{rel}: {body}");
    }

    // Windows: the PDB with its PE, against dump_syms' file for the same pair.
    let generated =
        records(&fetch_sym(&server, "crash.pdb", "3249D99D0C4049318610F4E4FB0B69361").await);
    let reference =
        records(&String::from_utf8(fixture_bytes("debug-files/windows/crash.sym")).unwrap());
    assert_eq!(
        generated.module,
        "MODULE windows x86 3249D99D0C4049318610F4E4FB0B69361 crash.pdb"
    );
    assert_eq!(generated.funcs.len(), reference.funcs.len());
    same_functions(&generated, &reference);
    assert!(reference.publics.is_subset(&generated.publics));
    // Every unwind rule generated is one dump_syms wrote (it wrote two more: frame data for
    // code the PE's own tables already cover).
    assert!(generated.stack.is_subset(&reference.stack));
    assert!(generated.stack.len() + 2 >= reference.stack.len());
    assert!(
        generated.lines >= reference.lines,
        "inlined lines are kept too"
    );

    // macOS: the dSYM with its binary.
    let generated =
        records(&fetch_sym(&server, "crash", "67E9247C814E392BA027DBDE6748FCBF0").await);
    let reference =
        records(&String::from_utf8(fixture_bytes("debug-files/macos/crash.sym")).unwrap());
    assert_eq!(generated.funcs.len(), reference.funcs.len());
    same_functions(&generated, &reference);
    // dump_syms' reference has unwind rules for fewer functions; every address it has a rule
    // for has one here (from the same `__unwind_info`, where runs of stubs share one entry).
    for address in reference.cfi_inits.keys() {
        let covered = generated
            .cfi_inits
            .range(..=address)
            .next_back()
            .is_some_and(|(start, size)| address - start < *size);
        assert!(covered, "no unwind rule covers {address:x}");
    }

    // Linux: dump_syms' reference was made from the stripped binary alone (symbols and unwind
    // rules); with the debug file as well, every one of its functions is a FUNC or PUBLIC here
    // and every unwind rule covers the same code.
    let generated =
        records(&fetch_sym(&server, "crash", "C0BCC3F19827FE653058404B2831D9E60").await);
    let reference =
        records(&String::from_utf8(fixture_bytes("debug-files/linux/crash.sym")).unwrap());
    assert_eq!(
        generated.module,
        "MODULE Linux x86_64 C0BCC3F19827FE653058404B2831D9E60 crash"
    );
    assert_eq!(generated.cfi_inits, reference.cfi_inits);
    let named: BTreeSet<u64> = generated
        .funcs
        .keys()
        .copied()
        .chain(generated.publics.iter().copied())
        .collect();
    let unnamed: Vec<_> = reference.publics.difference(&named).collect();
    assert!(
        unnamed.len() <= reference.publics.len() / 10,
        "{unnamed:x?}"
    );
    assert!(!generated.funcs.is_empty() && generated.lines > 1000);

    // Kept once generated; a new file for the module drops it (it may add to the `.sym`).
    let cached = |server: &TestServer| {
        server
            .stored_files()
            .into_iter()
            .any(|f| f == "caches/c0bcc3f1-9827-fe65-3058-404b2831d9e6/sym.v1")
    };
    assert!(cached(&server));
    let (status, _) = server
        .upload_fixture("debug-files/linux/crash.debug-zlib")
        .await;
    assert_eq!(status, 200);
    assert!(!cached(&server));
    // A module with no native file dump_syms reads (a .NET portable PDB) has no `.sym`.
    let (status, body) = server
        .upload_fixture("debug-files/windows/Sentry.Samples.Console.Basic.pdb")
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["files"][0]["file"]["debug_id"].as_str().unwrap();
    let response = server
        .anonymous
        .get(server.url(&format!(
            "/symbols/Sentry.Samples.Console.Basic.pdb/{id}/Sentry.Samples.Console.Basic.sym"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no Breakpad .sym"),
        "{answer}"
    );
}

/// The frames of a processed crash's crashing thread that came from symbols and unwind rules
/// (scanned frames are each walker's guess): function, file, line and inlines.
fn walked_frames(processed: &Value) -> Vec<String> {
    let thread = &processed["crashing_thread"];
    thread["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["trust"] != "scan")
        .map(|f| {
            let inlines: Vec<String> = f["inlines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| format!("{}:{}", i["function"], i["line"]))
                .collect();
            format!(
                "{} {} {}:{} [{}]",
                f["trust"],
                f["function"],
                f["file"],
                f["line"],
                inlines.join(", ")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn minidump_stackwalk_walks_as_faultline_does_with_generated_sym_files() {
    let mdsw = std::env::var("MINIDUMP_STACKWALK").unwrap_or_else(|_| "minidump-stackwalk".into());
    if !tool_present(&mdsw) {
        return;
    }
    let server = TestServer::start().await;
    // The crasher's ELF debug file is all the server holds for it: no `.sym` was uploaded.
    let (status, _) = server
        .upload("crasher.debug", generated_bytes("crasher.debug"))
        .await;
    assert_eq!(status, 200);
    let cache = tempfile::tempdir().unwrap();
    for dump in [
        "null-write.dmp",
        "wild-read-call.dmp",
        "abort.dmp",
        "stack-overflow.dmp",
    ] {
        let output = tokio::process::Command::new(&mdsw)
            .arg("--symbols-url")
            .arg(server.url("/symbols"))
            .arg("--symbols-cache")
            .arg(cache.path())
            .arg("--json")
            .arg(generated(dump))
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{dump}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Value = serde_json::from_slice(&output.stdout).unwrap();
        let response = server
            .client
            .post(server.url("/api/v1/minidump"))
            .body(generated_bytes(dump))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let ours: Value = response.json().await.unwrap();
        let (theirs, ours) = (walked_frames(&theirs), walked_frames(&ours));
        assert!(ours.len() >= 3, "{dump}: {ours:#?}");
        assert!(
            theirs.iter().any(|f| f.contains("crasher.rs")),
            "{dump}: minidump-stackwalk found the crasher's source lines: {theirs:#?}"
        );
        assert_eq!(theirs, ours, "{dump}");
    }
}
