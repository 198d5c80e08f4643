//! The `.crash` text report (Report Version 104 and later), read with getsentry's
//! `apple-crash-report-parser`: its header fields, `Thread N Crashed:` blocks of frames, the
//! crashed thread's state (`Thread 0 crashed with ARM Thread State (64-bit):`) and
//! `Binary Images:` lines, mapped into an [`AppleReport`]. The parser reads image lines that
//! name an architecture (iOS, macOS 12's translated reports); macOS 10.x and 11 wrote them
//! without one (`0x10a5e1000 - 0x10a5effff +crash (0) <UUID> /path`), and those it skips:
//! they are read here when it found none.

use apple_crash_report_parser::AppleCrashReport;

use super::{AppleFrame, AppleImage, AppleReport, AppleReportError, AppleThread, ReportFormat};

/// Reads a `.crash` report.
pub(super) fn parse(report: &[u8]) -> Result<AppleReport, AppleReportError> {
    let text = std::str::from_utf8(report)
        .map_err(|e| AppleReportError::Unreadable(format!("the report is not UTF-8 text: {e}")))?;
    let parsed: AppleCrashReport = text
        .parse()
        .map_err(|e| AppleReportError::Unreadable(format!("{e}")))?;
    let images = if parsed.binary_images.is_empty() {
        images_without_arch(text)
    } else {
        parsed
            .binary_images
            .into_iter()
            .map(|i| AppleImage {
                addr: i.addr.0,
                size: i.size,
                uuid: i.uuid.hyphenated().to_string(),
                name: i.name,
                path: i.path,
                arch: Some(i.arch).filter(|a| !a.is_empty() && a != "???"),
                version: i.version,
            })
            .collect()
    };
    let mut meta = parsed.metadata;
    let exception_type = meta.remove("Exception Type");
    let exception_codes = meta
        .remove("Exception Codes")
        .or_else(|| meta.remove("Exception Subtype"));
    let process = meta
        .remove("Process")
        .map(|p| p.split(" [").next().unwrap_or_default().to_owned());
    let mut report = AppleReport {
        format: Some(ReportFormat::Text),
        process,
        app_version: meta.remove("Version"),
        timestamp: parsed.timestamp.map(|t| t.to_rfc3339()),
        os: meta.remove("OS Version"),
        hardware: meta.remove("Hardware Model"),
        cpu: parsed.code_type,
        signal: meta
            .remove("Exception Signal")
            .or_else(|| exception_type.as_deref().and_then(AppleReport::signal_of)),
        fault_address: exception_codes.as_deref().and_then(AppleReport::address_in),
        exception_type,
        exception_codes,
        app_specific: parsed
            .application_specific_information
            .map(|text| text.trim().to_owned()),
        threads: parsed
            .threads
            .into_iter()
            .map(|t| AppleThread {
                id: t.id,
                name: t.name.or(t.dispatch_queue).map(|n| queue_name(&n)),
                crashed: t.crashed,
                frames: t
                    .frames
                    .iter()
                    .map(|f| AppleFrame::new(f.instruction_addr.0, f.symbol.as_deref()))
                    .collect(),
                registers: Vec::new(),
            })
            .collect(),
        images,
    };
    if let Some((id, registers)) = thread_state(text) {
        if let Some(thread) = report.threads.iter_mut().find(|t| t.id == id) {
            thread.registers = registers;
        }
    }
    Ok(report)
}

/// The crashed thread's registers: the block under `Thread 0 crashed with X86 Thread State
/// (64-bit):` (or `ARM Thread State (64-bit)`, or without the width as older reports wrote
/// it), `name: 0xVALUE` pairs until a blank line. Read here because the parser only knows the
/// heading without the width, which reports since macOS 10.13 do not write.
fn thread_state(text: &str) -> Option<(u64, Vec<(String, u64)>)> {
    static PAIR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pair = PAIR.get_or_init(|| {
        regex::Regex::new(r"\b([a-z][a-z0-9]{0,15}):\s+0x([0-9a-fA-F]{1,16})\b")
            .expect("the register pattern compiles")
    });
    let mut lines = text.lines();
    let id = lines.by_ref().find_map(|l| {
        let rest = l.strip_prefix("Thread ")?;
        let (id, heading) = rest.split_once(' ')?;
        (heading.starts_with("crashed with ") && heading.contains("Thread State"))
            .then(|| id.parse().ok())?
    })?;
    let registers = lines
        .take_while(|l| !l.trim().is_empty())
        .flat_map(|l| pair.captures_iter(l))
        .filter_map(|c| Some((c[1].to_owned(), u64::from_str_radix(&c[2], 16).ok()?)))
        .collect();
    Some((id, registers))
}

/// A thread's name without the punctuation of `Thread 0 Crashed:: Dispatch queue: NAME`.
fn queue_name(name: &str) -> String {
    let name = name.trim_start_matches(':').trim();
    name.strip_prefix("Dispatch queue:")
        .unwrap_or(name)
        .trim()
        .to_owned()
}

/// `Binary Images:` lines in the form without an architecture:
/// `START - END [+]NAME [(VERSION)] <UUID> PATH` (`+` marks the app's own images).
fn images_without_arch(text: &str) -> Vec<AppleImage> {
    static LINE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let line = LINE.get_or_init(|| {
        regex::Regex::new(
            r"^\s*0x([0-9a-fA-F]+)\s*-\s*0x([0-9a-fA-F]+)\s+\+?(.+?)\s+(?:\(([^)]*)\)\s+)?<([0-9a-fA-F-]{32,36})>\s*(.*?)\s*$",
        )
        .expect("the image line pattern compiles")
    });
    let Some(start) = text.find("\nBinary Images:") else {
        return Vec::new();
    };
    // From the heading's own line (past the newline found before it), the lines after it.
    text[start + 1..]
        .lines()
        .skip(1)
        .map_while(|l| line.captures(l))
        .filter_map(|c| {
            let addr = u64::from_str_radix(&c[1], 16).ok()?;
            let end = u64::from_str_radix(&c[2], 16).ok()?;
            let uuid: uuid::Uuid = c[5].parse().ok()?;
            Some(AppleImage {
                addr,
                size: end.checked_sub(addr)?.saturating_add(1),
                uuid: uuid.hyphenated().to_string(),
                name: c[3].to_owned(),
                path: c[6].to_owned(),
                arch: None,
                version: c.get(4).map(|v| v.as_str().to_owned()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_written_without_an_architecture_are_read() {
        let report = "Process:         crash [4242]
Report Version:  12

Thread 0 Crashed:: Dispatch queue: com.apple.main-thread
0   crash                         \t0x000000010a5eec15 main + 117
1   libdyld.dylib                 \t0x00007fff6f3a6cc9 start + 1

Binary Images:
       0x10a5e1000 -        0x10a5effff +crash (0) <67E9247C-814E-392B-A027-DBDE6748FCBF> /Users/USER/crash
    0x7fff6f3a3000 -     0x7fff6f3dcfff  libdyld.dylib (852.2) <5FB3A4D7-9F3B-3C32-A4B1-9E2B1E0C9A7D> /usr/lib/system/libdyld.dylib
    0x7fff70000000 -     0x7fff70000fff  Google Chrome Framework <9E3D2B1E-0C9A-3D11-A5A3-E4E4B6E1C4F2> /Applications/Google Chrome.app/Framework
";
        let parsed = parse(report.as_bytes()).unwrap();
        let images: Vec<(&str, &str, Option<&str>, u64)> = parsed
            .images
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.uuid.as_str(),
                    i.version.as_deref(),
                    i.size,
                )
            })
            .collect();
        assert_eq!(
            images,
            vec![
                (
                    "crash",
                    "67e9247c-814e-392b-a027-dbde6748fcbf",
                    Some("0"),
                    0xf000
                ),
                (
                    "libdyld.dylib",
                    "5fb3a4d7-9f3b-3c32-a4b1-9e2b1e0c9a7d",
                    Some("852.2"),
                    0x3a000
                ),
                (
                    "Google Chrome Framework",
                    "9e3d2b1e-0c9a-3d11-a5a3-e4e4b6e1c4f2",
                    None,
                    0x1000
                ),
            ]
        );
        assert_eq!(parsed.images[0].path, "/Users/USER/crash");
        assert_eq!(parsed.threads[0].frames[0].addr, 0x1_0a5e_ec15);
    }

    #[test]
    fn the_crashed_threads_state_is_read_with_or_without_its_width() {
        let arm = "Thread 2 crashed with ARM Thread State (64-bit):
    x0: 0x0000000000000000   x1: 0x000000016f9e6f58   x2: 0x0000000000000001
    fp: 0x000000016f9e6f40   lr: 0x0000000102f6c8a4   sp: 0x000000016f9e6f30   pc: 0x0000000102f6c8b8 cpsr: 0x60000000
   far: 0x0000000000000088      esr: 0x92000006 (Data Abort) byte read Translation fault

Binary Images:
";
        let (id, registers) = thread_state(arm).unwrap();
        assert_eq!(id, 2);
        let names: Vec<&str> = registers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x0", "x1", "x2", "fp", "lr", "sp", "pc", "cpsr", "far", "esr"]
        );
        assert_eq!(registers[6].1, 0x1_02f6_c8b8);
        let old = "Thread 0 crashed with X86-64 Thread State:\n  rip: 0x00007fff6f3a6cc9\n";
        assert_eq!(
            thread_state(old),
            Some((0, vec![("rip".to_owned(), 0x7fff_6f3a_6cc9)]))
        );
        assert_eq!(thread_state("Thread 0 Crashed:\n0 x 0x1 y\n"), None);
    }
}
