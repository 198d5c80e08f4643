//! Identification of every fixture kind, checked against independent sources: the `MODULE` /
//! `INFO CODE_ID` lines that dump_syms wrote for the same binaries, and the build ID / UUID read
//! with the `object` crate.

use crate::common;

use common::{fixture_bytes, sym_identity};
use faultline::symbols::identify::{identify, Rejection};
use faultline::symbols::ids::parse_debug_id;
use object::{Object, ObjectSection};

fn identify_one(rel: &str) -> faultline::symbols::identify::DebugFileMeta {
    let name = rel.rsplit('/').next().unwrap();
    let mut found = identify(&fixture_bytes(rel), name).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(found.len(), 1, "{rel} is a single object");
    found.remove(0).meta
}

/// Checks a native file's identity against the .sym dump_syms made from it.
fn assert_matches_sym(native: &str, sym: &str, expect_code_file: Option<&str>) {
    let meta = identify_one(native);
    let (_, arch, debug_id, _, code) = sym_identity(sym);
    assert_eq!(
        parse_debug_id(&meta.debug_id)
            .unwrap()
            .breakpad()
            .to_string(),
        debug_id,
        "{native}: debug ID"
    );
    assert_eq!(meta.arch, arch, "{native}: arch");
    if let Some((code_id, _)) = &code {
        if meta.code_id.is_some() {
            assert_eq!(
                meta.code_id.as_deref(),
                Some(code_id.to_lowercase().as_str()),
                "{native}: code ID"
            );
        }
    }
    if let Some(expected) = expect_code_file {
        assert_eq!(
            meta.code_file.as_deref(),
            Some(expected),
            "{native}: code file"
        );
    }
}

#[test]
fn elf_executable_and_debug_file_match_dump_syms() {
    assert_matches_sym(
        "debug-files/linux/crash",
        "debug-files/linux/crash.sym",
        Some("crash"),
    );
    assert_matches_sym(
        "debug-files/linux/crash.debug",
        "debug-files/linux/crash.sym",
        Some("crash"),
    );
    let exe = identify_one("debug-files/linux/crash");
    let dbg = identify_one("debug-files/linux/crash.debug");
    assert_eq!((exe.format.as_str(), exe.role.as_str()), ("elf", "exe"));
    assert_eq!((dbg.format.as_str(), dbg.role.as_str()), ("elf", "dbg"));
    // The stripped executable has unwind info and a symbol table but no DWARF; its
    // --only-keep-debug companion has DWARF and no usable .eh_frame.
    assert_eq!(exe.features.names(), ["symtab", "unwind"]);
    assert!(dbg.features.debug && !dbg.features.unwind);
}

#[test]
fn elf_code_id_is_the_gnu_build_id() {
    for rel in ["debug-files/linux/crash", "minidumps/symbolic/crash_linux"] {
        let bytes = fixture_bytes(rel);
        let file = object::File::parse(&*bytes).unwrap();
        let build_id = file.build_id().unwrap().unwrap();
        let meta = identify_one(rel);
        assert_eq!(meta.code_id.unwrap(), hex::encode(build_id), "{rel}");
        // Breakpad's rule: the first 16 bytes as a little-endian GUID, age 0.
        let mut guid = build_id[..16].to_vec();
        guid[..4].reverse();
        guid[4..6].reverse();
        guid[6..8].reverse();
        assert_eq!(
            parse_debug_id(&meta.debug_id)
                .unwrap()
                .breakpad()
                .to_string(),
            format!("{}0", hex::encode_upper(guid)),
            "{rel}"
        );
    }
}

#[test]
fn compressed_debug_sections_are_identified() {
    for rel in [
        "debug-files/linux/crash.debug-zlib",
        "debug-files/linux/crash.debug-zstd",
    ] {
        let meta = identify_one(rel);
        assert_eq!(
            meta.debug_id, "c0bcc3f1-9827-fe65-3058-404b2831d9e6",
            "{rel}"
        );
        assert!(meta.features.debug, "{rel} has DWARF");
    }
}

#[test]
fn macho_and_dsym_match_dump_syms_and_lc_uuid() {
    assert_matches_sym(
        "debug-files/macos/crash",
        "debug-files/macos/crash.sym",
        Some("crash"),
    );
    assert_matches_sym(
        "debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash",
        "debug-files/macos/crash.sym",
        None,
    );
    for rel in [
        "debug-files/macos/crash.dSYM/Contents/Resources/DWARF/crash",
        "minidumps/symbolic/crash_macos.dSYM/Contents/Resources/DWARF/crash_macos",
        "minidumps/symbolic/crash_macos",
    ] {
        let bytes = fixture_bytes(rel);
        let uuid = object::File::parse(&*bytes)
            .unwrap()
            .mach_uuid()
            .unwrap()
            .unwrap();
        let meta = identify_one(rel);
        // A Mach-O's code ID is its LC_UUID; the debug ID is the same UUID, age 0.
        assert_eq!(
            meta.code_id.as_deref(),
            Some(hex::encode(uuid).as_str()),
            "{rel}"
        );
        assert_eq!(
            meta.debug_id,
            uuid::Uuid::from_bytes(uuid).to_string(),
            "{rel}"
        );
        if rel.contains(".dSYM/") {
            assert_eq!(meta.role, "dbg", "{rel}");
            assert!(meta.features.debug, "{rel}");
        }
    }
}

#[test]
fn pdb_and_pe_match_dump_syms() {
    assert_matches_sym(
        "debug-files/windows/crash.pdb",
        "debug-files/windows/crash.sym",
        None,
    );
    assert_matches_sym(
        "debug-files/windows/crash.exe",
        "debug-files/windows/crash.sym",
        Some("crash.exe"),
    );
    assert_matches_sym(
        "debug-files/windows/CrashWithException.pdb",
        "debug-files/windows/CrashWithException.pdb.sym",
        None,
    );
    let exe = identify_one("debug-files/windows/CrashWithException.exe");
    let (_, _, debug_id, debug_file, code) =
        sym_identity("debug-files/windows/CrashWithException.pdb.sym");
    let (code_id, code_file) = code.unwrap();
    assert_eq!(
        parse_debug_id(&exe.debug_id)
            .unwrap()
            .breakpad()
            .to_string(),
        debug_id
    );
    assert_eq!(exe.code_id.unwrap(), code_id.to_lowercase());
    assert_eq!(exe.debug_file.as_deref(), Some(debug_file.as_str()));
    assert_eq!(exe.code_file.as_deref(), Some(code_file.as_str()));
    // The PE's code ID is its COFF timestamp followed by SizeOfImage.
    let bytes = fixture_bytes("debug-files/windows/crash.exe");
    let pe = object::read::pe::PeFile32::parse(&*bytes).unwrap();
    let timestamp = pe
        .nt_headers()
        .file_header
        .time_date_stamp
        .get(object::LittleEndian);
    let size = pe
        .nt_headers()
        .optional_header
        .size_of_image
        .get(object::LittleEndian);
    assert_eq!(
        identify_one("debug-files/windows/crash.exe")
            .code_id
            .unwrap(),
        format!("{timestamp:08x}{size:x}")
    );
}

#[test]
fn breakpad_files_carry_their_module_line() {
    for rel in [
        "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
        "symbols/breakpad/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym",
        "debug-files/breakpad/xul.sym",
        "debug-files/breakpad/large_symbol.sym",
    ] {
        let meta = identify_one(rel);
        let (_, arch, debug_id, name, code) = sym_identity(rel);
        assert_eq!(meta.format, "breakpad");
        assert_eq!(
            parse_debug_id(&meta.debug_id)
                .unwrap()
                .breakpad()
                .to_string(),
            debug_id,
            "{rel}"
        );
        assert_eq!(meta.arch, arch.to_lowercase(), "{rel}");
        assert_eq!(meta.debug_file.as_deref(), Some(name.as_str()), "{rel}");
        if let Some((code_id, code_file)) = code {
            assert_eq!(
                meta.code_id.as_deref(),
                Some(code_id.to_lowercase().as_str()),
                "{rel}"
            );
            if !code_file.is_empty() {
                assert_eq!(meta.code_file.as_deref(), Some(code_file.as_str()), "{rel}");
            }
        }
    }
}

/// A `.sym` file's features (found by a byte search) are what symbolic's record readers say,
/// on every Breakpad fixture and on files missing each kind of record.
#[test]
fn breakpad_features_match_symbolics_records() {
    let mut files: Vec<(String, Vec<u8>)> = [
        "symbols/breakpad/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym",
        "symbols/breakpad/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym",
        "debug-files/breakpad/xul.sym",
        "debug-files/breakpad/large_symbol.sym",
        "debug-files/linux/crash.sym",
        "debug-files/windows/crash.sym",
        "debug-files/windows/CrashWithException.pdb.sym",
        "debug-files/macos/crash.inlines.sym",
    ]
    .iter()
    .map(|rel| (rel.to_string(), fixture_bytes(rel)))
    .collect();
    let module = "MODULE Linux x86_64 C0BCC3F19827FE653058404B2831D9E60 crash\n";
    for (name, body) in [
        ("only-public", "PUBLIC 1000 0 main\n"),
        (
            "only-func",
            "FILE 0 a.c\nFUNC 1000 10 0 main\n1000 10 3 0\n",
        ),
        (
            "only-cfi",
            "STACK CFI INIT 1000 10 .cfa: $rsp 8 + .ra: .cfa -8 + ^\n",
        ),
        (
            "only-win",
            "STACK WIN 4 1000 10 0 0 0 0 0 0 1 $eip 4 + ^ = $esp $ebp 8 + =\n",
        ),
        ("nothing", "INFO CODE_ID 1234 crash\n"),
    ] {
        files.push((name.to_owned(), format!("{module}{body}").into_bytes()));
    }
    for (name, data) in &files {
        let found = identify(data, "x.sym").unwrap_or_else(|e| panic!("{name}: {e}"));
        let features = found[0].meta.features;
        let object = symbolic::debuginfo::Object::parse(data).unwrap();
        assert_eq!(
            (
                features.symtab,
                features.debug,
                features.unwind,
                features.sources
            ),
            (
                object.has_symbols(),
                object.has_debug_info(),
                object.has_unwind_info(),
                object.has_sources()
            ),
            "{name}"
        );
    }
}

#[test]
fn wasm_portable_pdb_and_arm64_pe_are_identified() {
    let wasm = identify_one("debug-files/wasm/simple.wasm");
    assert_eq!(
        (wasm.format.as_str(), wasm.arch.as_str()),
        ("wasm", "wasm32")
    );
    // The WASM build_id custom section is the code ID, folded into the debug ID.
    let bytes = fixture_bytes("debug-files/wasm/simple.wasm");
    let build_id = object::File::parse(&*bytes).ok().and_then(|f| {
        f.section_by_name("build_id")
            .map(|s| s.data().unwrap().to_vec())
    });
    if let Some(build_id) = build_id {
        assert!(hex::encode(build_id).ends_with(wasm.code_id.as_deref().unwrap()));
    }
    assert_eq!(
        wasm.code_id.as_deref().unwrap().replace('-', ""),
        wasm.debug_id.replace('-', "")
    );

    let ppdb = identify_one("debug-files/windows/portable.pdb");
    assert_eq!(ppdb.format, "portablepdb");
    assert!(ppdb.features.debug);

    // This ARM64 PE was linked without a CodeView record: no PDB can ever match it.
    let arm = fixture_bytes("debug-files/windows/arm64/test.exe");
    assert_eq!(
        identify(&arm, "test.exe").unwrap_err(),
        Rejection::NoDebugId {
            format: "pe".into()
        }
    );
}

#[test]
fn universal_macho_is_split_per_architecture() {
    // Build a fat file from two thin x86_64 Mach-O files: the fat header is big-endian
    // (magic, count, then cputype, cpusubtype, offset, size, align for each slice).
    let a = fixture_bytes("debug-files/macos/crash");
    let b = fixture_bytes("minidumps/symbolic/crash_macos");
    let align = 12u32; // 4096-byte alignment
    let off_a = 4096u32;
    let off_b = (off_a + a.len() as u32).next_multiple_of(4096);
    let mut fat = Vec::new();
    for word in [0xcafe_babe_u32, 2] {
        fat.extend_from_slice(&word.to_be_bytes());
    }
    for (off, len) in [(off_a, a.len()), (off_b, b.len())] {
        for word in [0x0100_0007_u32, 3, off, len as u32, align] {
            fat.extend_from_slice(&word.to_be_bytes());
        }
    }
    fat.resize(off_a as usize, 0);
    fat.extend_from_slice(&a);
    fat.resize(off_b as usize, 0);
    fat.extend_from_slice(&b);

    let found = identify(&fat, "Universal").unwrap();
    let ids: Vec<&str> = found.iter().map(|o| o.meta.debug_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "67e9247c-814e-392b-a027-dbde6748fcbf",
            "3f58bc3d-eabe-3361-b5fb-52a676298598"
        ]
    );
    assert_eq!(&fat[found[0].range.clone()], &a[..]);
    assert_eq!(&fat[found[1].range.clone()], &b[..]);
}

#[test]
fn bad_files_are_rejected_with_specific_reasons() {
    assert_eq!(
        identify(b"just some text, not a debug file at all", "x.txt").unwrap_err(),
        Rejection::NotDebugFile
    );
    assert_eq!(identify(b"", "empty").unwrap_err(), Rejection::NotDebugFile);

    let elf = fixture_bytes("debug-files/linux/crash.debug");
    let truncated = &elf[..elf.len() / 3];
    match identify(truncated, "crash.debug") {
        Err(Rejection::Corrupt { format, .. }) => assert_eq!(format, "elf"),
        other => panic!("truncated ELF: {other:?}"),
    }

    let pdb = fixture_bytes("debug-files/windows/crash.pdb");
    assert!(matches!(
        identify(&pdb[..8192], "crash.pdb"),
        Err(Rejection::Corrupt { .. })
    ));

    // symbolic's crash_linux.sym holds only STACK CFI records: no MODULE line, no debug ID.
    assert_eq!(
        identify(
            &fixture_bytes("minidumps/symbolic/crash_linux.sym"),
            "crash_linux.sym"
        )
        .unwrap_err(),
        Rejection::NoDebugId {
            format: "breakpad".into()
        }
    );

    let nil = b"MODULE Linux x86_64 000000000000000000000000000000000 nil\nFUNC 1000 10 0 f\n";
    assert_eq!(
        identify(nil, "nil.sym").unwrap_err(),
        Rejection::NoDebugId {
            format: "breakpad".into()
        }
    );
}
