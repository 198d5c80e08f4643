//! Variables of a Windows frame, from a real PDB: symbolic's `crash.exe` (Breakpad's Windows
//! test crasher, 32-bit MSVC 19.13 Release, `/LTCG`) and its `crash.pdb` from ../shared. No
//! Windows dump of that build exists, so the test writes the one Windows would: `main` stopped
//! at the `mov dword ptr [0x45], 5` of `crash()` inlined into it (RVA 0x2A3D, as the disassembly
//! of crash.exe shows), with the stack the test lays out, so every expected value below is
//! worked out by hand from that stack and the PDB's records for `main`:
//!
//! - `S_FRAMEPROC`: local and parameter frame pointer EBP; `S_DEFRANGE_REGISTER_REL`: `argc` at
//!   EBP+212 and `argv` at EBP+216 over the whole body (ESP+208 / +212 only at its first byte),
//!   `eh` (a `google_breakpad::ExceptionHandler`, 200 bytes in the TPI) at EBP+0.
//! - The members read back are at the offsets the TPI's field list gives: `callback_` +4,
//!   `dump_type_` +108, `handler_types_` +120, `requesting_thread_id_` +176,
//!   `handle_debug_exceptions_` +189.
//! - The call chain at the instruction: `main` → `start` → `crash` (two `S_INLINESITE`s whose
//!   annotations cover 0x12D..0x137 of main); neither declares a variable.

use minidump_common::format as md;
use minidump_synth::{DumpString, Exception, Memory, Module, SynthMinidump, SystemInfo, Thread};
use serde_json::Value;
use test_assembler::{Endian, Section};

use crate::common;
use common::symbol_store;
use faultline::config::Config;
use faultline::process::Processor;

/// Where crash.exe is loaded (its preferred base) and where the test puts main's frame.
const BASE: u32 = 0x0040_0000;
const STACK: u32 = 0x0019_f000;
const ESP: u32 = STACK + 0xc0;
const EBP: u32 = STACK + 0x100;
/// `argv`'s array and the strings it points to.
const ARGV: u32 = STACK + 0x300;
/// The wide characters of a `std::wstring` too long for its own buffer.
const WIDE: u32 = STACK + 0x340;
const MINIDUMP_ID: &str = "6a0b5f1e-d3c1-4c5d-9a3e-2b7f0c8e4d21";

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// crash.pdb's debug ID: 3249D99D-0C40-4931-8610-F4E4FB0B6936, age 1.
fn codeview() -> Section {
    let guid = uuid::Uuid::parse_str("3249D99D-0C40-4931-8610-F4E4FB0B6936").unwrap();
    Section::with_endian(Endian::Little)
        .D32(0x5344_5352) // "RSDS"
        .append_bytes(&guid.to_bytes_le())
        .D32(1)
        .append_bytes(b"crash.pdb\0")
}

/// A 32-bit Windows CONTEXT with the registers the walk and the variables read.
fn context(eip: u32, esp: u32, ebp: u32) -> Section {
    Section::with_endian(Endian::Little)
        .D32(0x1003f) // CONTEXT_X86_ALL
        .append_repeated(0, 4 * 6) // debug registers
        .append_repeated(0, 112) // FLOATING_SAVE_AREA
        .append_repeated(0, 4 * 4) // gs, fs, es, ds
        .append_repeated(0, 4 * 6) // edi, esi, ebx, edx, ecx, eax
        .D32(ebp)
        .D32(eip)
        .D32(0) // cs
        .D32(0) // eflags
        .D32(esp)
        .D32(0) // ss
        .append_repeated(0, 512)
}

/// The crashing thread's stack from STACK to STACK + 0x400, little-endian words placed by hand.
fn stack() -> Vec<u8> {
    let mut stack = vec![0u8; 0x400];
    let mut put = |address: u32, bytes: &[u8]| {
        let at = (address - STACK) as usize;
        stack[at..at + bytes.len()].copy_from_slice(bytes);
    };
    // eh, at EBP + 0.
    put(EBP + 4, &(BASE + 0x28d0).to_le_bytes()); // callback_: `callback`, RVA 0x28D0
    put(EBP + 108, &0u32.to_le_bytes()); // dump_type_: MiniDumpNormal
    put(EBP + 120, &7u32.to_le_bytes()); // handler_types_: HANDLER_ALL
    put(EBP + 176, &0x1234u32.to_le_bytes()); // requesting_thread_id_
    put(EBP + 189, &[1]); // handle_debug_exceptions_
                          // dump_path_ (+16), a std::wstring short enough for its own buffer: `_Bx._Buf` (16 bytes),
                          // `_Mysize` 4 characters, `_Myres` 7 (the buffer's capacity).
    put(EBP + 16, &utf16("C:\\\u{fc}\0"));
    put(EBP + 16 + 16, &4u32.to_le_bytes());
    put(EBP + 16 + 20, &7u32.to_le_bytes());
    // next_minidump_id_ (+40): 36 characters on the heap (`_Bx._Ptr`), capacity 39.
    put(EBP + 40, &WIDE.to_le_bytes());
    put(EBP + 40 + 16, &36u32.to_le_bytes());
    put(EBP + 40 + 20, &39u32.to_le_bytes());
    put(WIDE, &utf16(&format!("{MINIDUMP_ID}\0")));
    // dump_path_c_ (+88) and next_minidump_id_c_ (+92): the strings' `c_str()`.
    put(EBP + 88, &(EBP + 16).to_le_bytes());
    put(EBP + 92, &WIDE.to_le_bytes());
    // The saved EBP and the return address (0: the walk ends at main).
    put(EBP + 0xcc, &0u32.to_le_bytes());
    put(EBP + 0xd0, &0u32.to_le_bytes());
    // argc and argv.
    put(EBP + 212, &2u32.to_le_bytes());
    put(EBP + 216, &ARGV.to_le_bytes());
    put(ARGV, &(ARGV + 0x20).to_le_bytes());
    put(ARGV + 4, &(ARGV + 0x30).to_le_bytes());
    put(ARGV + 8, &0u32.to_le_bytes());
    put(ARGV + 0x20, b"crash.exe\0");
    put(ARGV + 0x30, b"--now\0");
    stack
}

/// The dump Windows writes when crash.exe's `crash()` writes to 0x45.
fn crash_exe_dump() -> Vec<u8> {
    let e = Endian::Little;
    let path = DumpString::new(
        "C:\\projects\\breakpad-tools\\windows\\crash\\Release\\crash.exe",
        e,
    );
    let cv = codeview();
    let module =
        Module::new(e, u64::from(BASE), 0x9000, &path, 0x5ab3_8077, 0, None).cv_record(&cv);
    let system = SystemInfo::new(e)
        .set_platform_id(md::PlatformId::VER_PLATFORM_WIN32_NT as u32)
        .set_processor_architecture(md::ProcessorArchitecture::PROCESSOR_ARCHITECTURE_INTEL as u16);
    let eip = BASE + 0x1000 + 6416 + 0x12d;
    let registers = context(eip, ESP, EBP);
    let memory = Memory::with_section(
        Section::with_endian(e).append_bytes(&stack()),
        u64::from(STACK),
    );
    let thread = Thread::new(e, 1, &memory, &registers);
    let mut exception = Exception::new(e);
    exception.thread_id = 1;
    exception.exception_record.exception_code = 0xc000_0005;
    exception.exception_record.exception_address = u64::from(eip);
    exception.exception_record.number_parameters = 2;
    exception.exception_record.exception_information[0] = 1; // a write
    exception.exception_record.exception_information[1] = 0x45;
    SynthMinidump::with_endian(e)
        .add_system_info(system)
        .add_exception(exception)
        .add(path)
        .add(cv)
        .add_module(module)
        .add_thread(thread)
        .add(registers)
        .add_memory(memory)
        .finish()
        .unwrap()
}

fn variable<'a>(frame: &'a Value, name: &str) -> &'a Value {
    frame["variables"]
        .as_array()
        .unwrap_or_else(|| panic!("no variables on {frame}"))
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {}", frame["variables"]))
}

fn member<'a>(value: &'a Value, name: &str) -> &'a Value {
    value["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {value}"))
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member `{name}` in {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_frame_shows_its_parameters_and_locals_from_the_pdb() {
    let pdb = common::fixture("debug-files/windows/crash.pdb");
    let (store, _dir) = symbol_store(&[pdb]).await;
    let json = Processor::from_config(&Config::default(), store)
        .process(crash_exe_dump().into())
        .await
        .unwrap()
        .to_json();
    let top = &json["crashing_thread"]["frames"][0];
    assert_eq!(top["function"], "main(int, char**)", "{top}");
    assert_eq!(
        top["inlines"][0]["function"], "`anonymous namespace'::crash()",
        "{top}"
    );

    let argc = variable(top, "argc");
    assert_eq!(argc["kind"], "parameter", "{argc}");
    assert_eq!(argc["type"], "int", "{argc}");
    assert_eq!(argc["value"], "2", "{argc}");
    let argv = variable(top, "argv");
    assert_eq!(argv["type"], "char **", "{argv}");
    assert_eq!(argv["value"], format!("{ARGV:#x}"), "{argv}");
    assert_eq!(argv["points_to"], "stack", "{argv}");

    let eh = variable(top, "eh");
    assert_eq!(eh["kind"], "local", "{eh}");
    assert_eq!(
        eh["type"], "class google_breakpad::ExceptionHandler",
        "{eh}"
    );
    let callback = member(eh, "callback_");
    assert_eq!(
        callback["value"],
        format!("{:#x}", BASE + 0x28d0),
        "{callback}"
    );
    assert_eq!(callback["points_to"], "module crash.exe", "{callback}");
    assert_eq!(member(eh, "dump_type_")["value"], "MiniDumpNormal");
    assert_eq!(member(eh, "handler_types_")["value"], "7");
    assert_eq!(member(eh, "requesting_thread_id_")["value"], "4660");
    assert_eq!(member(eh, "handle_debug_exceptions_")["value"], "true");
    assert_eq!(member(eh, "handler_return_value_")["value"], "false");
    // Wide strings: MSVC's std::wstring in its own buffer and on the heap, and `const wchar_t *`.
    let dump_path = member(eh, "dump_path_");
    assert_eq!(dump_path["text"], "C:\\\\\\u{fc}", "{dump_path}");
    assert_eq!(member(eh, "next_minidump_id_")["text"], MINIDUMP_ID);
    assert_eq!(member(eh, "dump_path_c_")["text"], "C:\\\\\\u{fc}");
    assert_eq!(member(eh, "dump_path_c_")["points_to"], "stack");
    assert_eq!(member(eh, "next_minidump_id_c_")["text"], MINIDUMP_ID);
}

/// The offline CLI reads the same values with the PDB given as `--symbols`: the report lists
/// them under the crashing frame.
#[tokio::test(flavor = "multi_thread")]
async fn the_offline_report_shows_a_windows_frames_variables() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("crash.dmp");
    std::fs::write(&dump, crash_exe_dump()).unwrap();
    let mut command = common::faultline();
    command
        .arg("process")
        .arg(&dump)
        .arg("--symbols")
        .arg(common::fixture("debug-files/windows/crash.pdb"));
    let (code, stdout, stderr) = common::run(command).await;
    assert_eq!(code, 0, "{stderr}");
    let callback = format!("callback_ = {:#x} (module crash.exe)", BASE + 0x28d0);
    for shown in ["argc = 2", &format!("argv = {ARGV:#x} (stack)"), &callback] {
        assert!(stdout.contains(shown), "no `{shown}` in:\n{stdout}");
    }
}
