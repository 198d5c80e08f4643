//! Tests of the PDB reader against symbolic's Windows fixtures in ../shared, each expectation
//! read off `llvm-pdbutil dump -symbols` of the same file.

use std::borrow::Cow;

use pdb::BinaryAnnotation as A;

use super::*;
use crate::variables::eval::{self, CapturedMemory, FrameContext};
use crate::variables::table::{Location, LocationRange, Scope, VariableDecl};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../shared/fixtures/debug-files/windows/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn declared<'a>(scope: &'a Scope, name: &str) -> &'a VariableDecl {
    scope
        .variables
        .iter()
        .find(|v| &*v.name == name)
        .unwrap_or_else(|| panic!("no {name} in {scope:?}"))
}

fn list(location: &Location) -> Vec<(u64, u64, &[u8])> {
    match location {
        Location::List(list) => list
            .iter()
            .map(|r: &LocationRange| (r.start, r.end, r.expression.as_slice()))
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// A frame whose CFA and some registers (by DWARF number) are known, over one block of
/// memory.
struct Frame {
    cfa: u64,
    registers: Vec<(u16, u64)>,
    memory: (u64, Vec<u8>),
}

impl FrameContext for Frame {
    fn register(&self, register: u16) -> Option<u64> {
        self.registers
            .iter()
            .find(|(r, _)| *r == register)
            .map(|(_, value)| *value)
    }
    fn cfa(&self) -> Option<u64> {
        Some(self.cfa)
    }
    fn entry_value(&self, _: u16) -> Option<u64> {
        None
    }
    fn relocate(&self, address: u64) -> u64 {
        address
    }
}

impl CapturedMemory for Frame {
    fn read(&self, address: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        let start = usize::try_from(address.checked_sub(self.memory.0)?).ok()?;
        self.memory.1.get(start..start + len).map(Cow::Borrowed)
    }
}

/// `callback` in crash.pdb (x86, no frame pointer: `S_FRAMEPROC` says VFRAME) as
/// llvm-pdbutil lists it: each parameter at ESP+n at its first byte
/// (`S_DEFRANGE_REGISTER_REL`), then at VFRAME+n for the whole body
/// (`…_FRAMEPOINTER_REL_FULL_SCOPE`); `succeeded` in BL over 45 bytes from 0x28D5 but the one
/// at +28; the `S_REGREL32`s repeating them add nothing.
#[test]
fn an_fpo_procedures_parameters_are_found_from_the_virtual_frame() {
    let table = build(&fixture("crash.pdb")).unwrap();
    let callback = table.function_at(0x28d0).unwrap();
    assert_eq!(
        callback.scope.kind,
        ScopeKind::Function("`anonymous namespace'::callback".into())
    );
    assert_eq!(callback.scope.ranges, [(0x28d0, 0x28d0 + 51)]);
    let names: Vec<&str> = callback.scope.variables.iter().map(|v| &*v.name).collect();
    assert_eq!(
        names,
        [
            "dump_path",
            "minidump_id",
            "context",
            "exinfo",
            "assertion",
            "succeeded"
        ]
    );
    assert!(callback.scope.variables.iter().all(|v| v.parameter));
    let dump_path = declared(&callback.scope, "dump_path");
    assert_eq!(table.type_name(dump_path.type_id), "const wchar_t *");
    // DW_OP_breg4 (esp) 4; DW_OP_call_frame_cfa, DW_OP_consts 0, DW_OP_plus.
    assert_eq!(
        list(&dump_path.location),
        [
            (0x28d0, 0x28d1, &[0x74, 4][..]),
            (0x28d0, 0x2903, &[0x9c, 0x11, 0, 0x22][..])
        ]
    );
    let succeeded = declared(&callback.scope, "succeeded");
    assert_eq!(table.type_name(succeeded.type_id), "bool");
    assert_eq!(
        list(&succeeded.location)[..2],
        [(0x28d5, 0x28f1, &[0x53][..]), (0x28f2, 0x2902, &[0x53][..])]
    );

    // Evaluated: VFRAME is the address of the return address, so `dump_path`, the first
    // argument, is the word at the CFA.
    let frame = Frame {
        cfa: 0x1000,
        registers: Vec::new(),
        memory: (0xffc, vec![0xd0, 0x28, 0x40, 0, 0x78, 0x56, 0x34, 0x12]),
    };
    let bytes =
        eval::variable_bytes(&dump_path.location, callback, 0x28e0, 4, &frame, &frame).unwrap();
    let bytes: Vec<u8> = bytes.into_iter().map(|b| b.unwrap()).collect();
    assert_eq!(bytes, 0x1234_5678u32.to_le_bytes());
}

/// x64 (CrashWithException.pdb): `printf`'s `_Format` in RCX over its first 40 bytes, then
/// at RSP+80 (`S_FRAMEPROC`: the frame pointer is RSP) for the whole body.
#[test]
fn an_x64_parameter_moves_from_its_register_to_the_stack() {
    let table = build(&fixture("CrashWithException.pdb")).unwrap();
    let printf = table.function_at(0x1010).unwrap();
    assert_eq!(printf.scope.kind, ScopeKind::Function("printf".into()));
    assert_eq!(printf.encoding.address_size, 8);
    let format = declared(&printf.scope, "_Format");
    assert!(format.parameter);
    assert_eq!(table.type_name(format.type_id), "const char * const");
    // DW_OP_reg2 (rcx); DW_OP_breg7 (rsp) 80.
    assert_eq!(
        list(&format.location),
        [
            (0x1010, 0x1038, &[0x52][..]),
            (0x1010, 0x1065, &[0x77, 0xd0, 0x00][..])
        ]
    );
    let result = declared(&printf.scope, "_Result");
    assert!(!result.parameter);
    assert_eq!(list(&result.location), [(0x105d, 0x1065, &[0x50][..])]);
}

/// main's inline sites in crash.pdb: a record runs to the next one; one given a length
/// ends there (0x123..0x126 is outside); nested sites keep their own ranges.
#[test]
fn inline_sites_cover_what_their_annotations_say() {
    let table = build(&fixture("crash.pdb")).unwrap();
    let main = 0x1000 + 6416;
    let chain = table
        .function_at(main + 0xe0)
        .unwrap()
        .scope
        .chain_at(main + 0xe0);
    let ranges: Vec<&[(u64, u64)]> = chain.iter().map(|s| s.ranges.as_slice()).collect();
    let inlined = [(main + 0xda, main + 0x123), (main + 0x126, main + 0x12d)];
    assert_eq!(ranges[1], inlined);
    assert_eq!(ranges[2], inlined);
    let at_crash = table
        .function_at(main + 0x12d)
        .unwrap()
        .scope
        .chain_at(main + 0x12d);
    let kinds: Vec<&ScopeKind> = at_crash.iter().map(|s| &s.kind).collect();
    assert_eq!(
        kinds,
        [
            &ScopeKind::Function("main".into()),
            &ScopeKind::Inlined("start".into()),
            &ScopeKind::Inlined("crash".into())
        ]
    );

    // Link-time code generation's sites name their inlinee by an index another module
    // exports (0x80000007…): std::wstring's destructor inlined into main, and in it the
    // deallocation, whose locals live in registers (EAX, ECX, EDX: DW_OP_reg0…2) and whose
    // `_Ptr_container` has an imported type too.
    let deep = table
        .function_at(main + 0x100)
        .unwrap()
        .scope
        .chain_at(main + 0x100);
    let names: Vec<&str> = deep
        .iter()
        .map(|s| match &s.kind {
            ScopeKind::Inlined(name) => &**name,
            _ => "",
        })
        .collect();
    let wstring = "std::basic_string<wchar_t,std::char_traits<wchar_t>,std::allocator<wchar_t> >";
    assert_eq!(
        names,
        [
            String::new(),
            format!("{wstring}::{{dtor}}"),
            format!("{wstring}::_Tidy_deallocate"),
            "std::allocator<wchar_t>::deallocate".to_owned(),
            "_Deallocate".to_owned(),
            "_Adjust_manually_vector_aligned".to_owned(),
        ]
    );
    let innermost = deep.last().unwrap();
    let container = declared(innermost, "_Ptr_container");
    assert_eq!(table.type_name(container.type_id), "const unsigned int");
    assert_eq!(
        list(&container.location),
        [(0x2a0e, 0x2a11, &[0x50][..]), (0x2a09, 0x2a0e, &[0x51][..])]
    );
    let bytes = declared(deep[4], "_Bytes");
    assert_eq!(list(&bytes.location), [(0x29fc, 0x2a23, &[0x52][..])]);

    // The annotations' forms one by one.
    let ranges = locations::inline_ranges(
        0x100,
        [
            A::ChangeCodeOffset(0x10),
            A::ChangeCodeOffsetAndLineOffset(0x4, 2),
            A::ChangeCodeLength(0x6),
            A::ChangeCodeOffset(0x10),
            A::ChangeCodeLengthAndCodeOffset(0x3, 0x8),
        ],
    );
    // 0x10..0x14, 0x14..0x1a; then 0x2a..0x32 (to the next offset), 0x32..0x35.
    assert_eq!(ranges, [(0x110, 0x11a), (0x12a, 0x135)]);
}

/// Hostile PDBs: crash.pdb with bytes overwritten all over, and cut short, gives a table or
/// an error (the pdb crate's panics on some malformed records caught), and a record that
/// does not read costs its own variables, not the table's.
#[test]
fn mutated_pdbs_give_a_table_or_an_error() {
    let original = fixture("crash.pdb");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut tables = 0;
    for round in 0..24 {
        let mut bytes = original.clone();
        for _ in 0..64 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if round % 4 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        match build(&bytes) {
            Ok(table) if !table.functions.is_empty() => tables += 1,
            _ => {}
        }
    }
    eprintln!("{tables} of 24 mutated PDBs still gave variables");
    assert!(tables >= 12, "{tables} of 24 mutated PDBs gave variables");
    assert!(build(b"not a pdb").is_err());
}

/// `HandleInvalidParameter` in crash.pdb: its parameters from `S_LOCAL` and their ranges
/// (`expression` in EDI, then at ESP+4 at the first byte, then at the frame pointer + 8), the
/// `S_BPREL32` copies of them left out; its locals only `S_BPREL32` describes at EBP−n
/// (`DW_OP_breg5` with the offset as a signed LEB128).
#[test]
fn frame_relative_locals_live_at_ebp() {
    let table = build(&fixture("crash.pdb")).unwrap();
    let handler = table.function_at(0x1d60).unwrap();
    let names: Vec<&str> = handler.scope.variables.iter().map(|v| &*v.name).collect();
    assert_eq!(
        names,
        [
            "expression",
            "function",
            "file",
            "line",
            "reserved",
            "current_handler",
            "success",
            "auto_exception_handler",
            "assertion",
            "exception_ptrs",
            "exception_record",
            "exception_context"
        ]
    );
    let expression = declared(&handler.scope, "expression");
    assert!(expression.parameter);
    assert_eq!(
        list(&expression.location),
        [
            (0x1d97, 0x1eea, &[0x57][..]),
            (0x1d60, 0x1d61, &[0x74, 4][..]),
            (0x1d60, 0x1eea, &[0x75, 8][..])
        ]
    );
    let assertion = declared(&handler.scope, "assertion");
    assert!(!assertion.parameter);
    assert_eq!(
        table.type_name(assertion.type_id),
        "struct MDRawAssertionInfo"
    );
    // -876 and -100.
    assert!(matches!(&assertion.location, Location::Expression(e) if e[..] == [0x75, 0x94, 0x79]));
    let record = declared(&handler.scope, "exception_record");
    assert!(matches!(&record.location, Location::Expression(e) if e[..] == [0x75, 0x9c, 0x7f]));
}

/// Optimized x86 code keeps parts of a variable in registers (`S_DEFRANGE_SUBFIELD_REGISTER`).
/// In `WriteMinidumpWithExceptionForProcess` (RVA 0x2210 = 0x1000 + 0001:4624, 556 bytes;
/// `S_FRAMEPROC`: locals at VFRAME) llvm-pdbutil lists `except_info`
/// (`_MINIDUMP_EXCEPTION_INFORMATION`, 12 bytes: `ThreadId`, `ExceptionPointers`,
/// `ClientPointers`) at VFRAME−96 for the whole body and its field at offset 4 in EBX over
/// 0001:4657 +510 but a gap of 411 from +85; and the 64-bit `instruction_pointer` only in
/// parts: its low half in EDI over 0001:4868 +89 and 0001:5005 +4, its high half in EAX over
/// 0001:4966 +2.
#[test]
fn parts_of_a_variable_in_registers_are_assembled_with_the_rest_from_memory() {
    let table = build(&fixture("crash.pdb")).unwrap();
    let function = table.function_at(0x2210).unwrap();
    let except_info = declared(&function.scope, "except_info");
    assert_eq!(table.type_size(except_info.type_id), 12);
    // DW_OP_call_frame_cfa, DW_OP_consts -100 (VFRAME−96 is CFA−100), DW_OP_plus,
    // DW_OP_piece 4; DW_OP_reg3 (ebx), DW_OP_piece 4; the same with −92, DW_OP_piece 4.
    let assembled: &[u8] = &[
        0x9c, 0x11, 0x9c, 0x7f, 0x22, 0x93, 4, 0x53, 0x93, 4, 0x9c, 0x11, 0xa4, 0x7f, 0x22, 0x93, 4,
    ];
    assert_eq!(
        list(&except_info.location),
        [
            (0x2231, 0x2286, assembled),
            (0x2421, 0x242f, assembled),
            (0x2210, 0x243c, &[0x9c, 0x11, 0x9c, 0x7f, 0x22][..]),
        ]
    );
    // Evaluated where EBX holds the pointer: the fields around it come from the stack.
    let frame = Frame {
        cfa: 0x1000,
        registers: vec![(3, 0x0012_ff40)],
        memory: (
            0xf9c,
            [0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 1, 0, 0, 0].to_vec(),
        ),
    };
    let read = |location: &Location, at: u64, size: u64| -> Vec<Option<u8>> {
        eval::variable_bytes(location, function, at, size, &frame, &frame)
            .unwrap()
            .into_iter()
            .map(|b| b.ok())
            .collect()
    };
    let expected: Vec<Option<u8>> = [0x44, 0x33, 0x22, 0x11, 0x40, 0xff, 0x12, 0, 1, 0, 0, 0]
        .map(Some)
        .to_vec();
    assert_eq!(read(&except_info.location, 0x2240, 12), expected);
    // Outside EBX's range the whole struct is the stack's.
    assert_eq!(read(&except_info.location, 0x2300, 12)[4..8], [Some(0); 4]);

    let instruction_pointer = declared(&function.scope, "instruction_pointer");
    assert_eq!(
        table.type_name(instruction_pointer.type_id),
        "const unsigned __int64"
    );
    // DW_OP_reg7 (edi), DW_OP_piece 4, DW_OP_piece 4 (unknown); the reverse with DW_OP_reg0.
    let low: &[u8] = &[0x57, 0x93, 4, 0x93, 4];
    assert_eq!(
        list(&instruction_pointer.location),
        [
            (0x2304, 0x235d, low),
            (0x2366, 0x2368, &[0x93, 4, 0x50, 0x93, 4][..]),
            (0x238d, 0x2391, low),
        ]
    );
    let frame = Frame {
        registers: vec![(7, 0x7654_3210)],
        ..frame
    };
    let bytes = eval::variable_bytes(
        &instruction_pointer.location,
        function,
        0x2310,
        8,
        &frame,
        &frame,
    )
    .unwrap();
    assert_eq!(
        bytes[..4]
            .iter()
            .map(|b| *b.as_ref().unwrap())
            .collect::<Vec<u8>>(),
        0x7654_3210u32.to_le_bytes()
    );
    assert!(
        bytes[4..].iter().all(|b| b.is_err()),
        "the high half is unknown there"
    );
}
