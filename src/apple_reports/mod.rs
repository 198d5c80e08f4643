//! Apple crash reports: what macOS and iOS write when a process dies and no Crashpad is there
//! to catch it. Two formats: the `.crash` text report (Report Version 104 and later, read by
//! `text.rs`) and, since macOS 12, the `.ips` report (a JSON header line, then a JSON body,
//! read by `ips.rs`). Both become one [`AppleReport`]: threads with their frames' addresses,
//! binary images (UUID, load range, name, version), the exception (type, codes, signal, the
//! faulting address), the crashed thread and its registers, Application Specific Information,
//! OS and hardware.
//!
//! A report is then an event ([`AppleReport::to_event_json`]) like a native SDK's: its frames are
//! symbolicated through the same module symbols (dSYMs and Mach-O files by UUID), grouped by
//! their functions and classified by the exception, as any native event is.

mod ips;
mod text;

use serde_json::{json, Value};

use crate::events::Event;

/// The largest report read (a real one is tens of kilobytes; a bigger one is refused).
pub const MAX_REPORT_BYTES: usize = 8 << 20;
/// Most threads kept, and frames per thread (the innermost are kept).
const MAX_THREADS: usize = 256;
const MAX_FRAMES: usize = 512;
/// Most frames kept over all threads (the crashed thread's first), so that the event stays
/// within [`crate::events::MAX_EVENT_BYTES`].
const MAX_TOTAL_FRAMES: usize = 10_000;
/// Most binary images kept.
const MAX_IMAGES: usize = 1024;
/// Most registers kept per thread (ARM64 has 34, x86-64 21).
const MAX_REGISTERS: usize = 64;

/// Which format the report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `.crash` text.
    Text,
    /// `.ips` JSON.
    Ips,
}

impl ReportFormat {
    /// `crash` or `ips`, as the report's tag says.
    pub fn name(self) -> &'static str {
        match self {
            ReportFormat::Text => "crash",
            ReportFormat::Ips => "ips",
        }
    }
}

/// One crash report, whichever format it came in.
#[derive(Debug, Clone, Default)]
pub struct AppleReport {
    /// The format read.
    pub format: Option<ReportFormat>,
    /// The process's name.
    pub process: Option<String>,
    /// The app's version (`Version:`, `app_version`).
    pub app_version: Option<String>,
    /// When it crashed, as the report writes it.
    pub timestamp: Option<String>,
    /// The OS (`macOS 12.3 (21E230)`, `Mac OS X 10.14.0 (18A391)`).
    pub os: Option<String>,
    /// The hardware model (`MacBookPro18,3`, `iPhone14,2`).
    pub hardware: Option<String>,
    /// The CPU type (`X86-64`, `ARM-64`).
    pub cpu: Option<String>,
    /// The exception type as written (`EXC_BAD_ACCESS (SIGSEGV)`, `EXC_CRASH (SIGABRT)`).
    pub exception_type: Option<String>,
    /// The exception's codes or subtype (`KERN_INVALID_ADDRESS at 0x0000000000000088`).
    pub exception_codes: Option<String>,
    /// The signal (`SIGSEGV`), from the report or the type's parentheses.
    pub signal: Option<String>,
    /// The address the bad access touched, when the codes name one.
    pub fault_address: Option<u64>,
    /// Application Specific Information (`abort() called`, an assertion's text).
    pub app_specific: Option<String>,
    /// The threads, each innermost frame first.
    pub threads: Vec<AppleThread>,
    /// The binary images.
    pub images: Vec<AppleImage>,
}

/// One thread of a report.
#[derive(Debug, Clone, Default)]
pub struct AppleThread {
    /// Its number in the report.
    pub id: u64,
    /// Its name, or its dispatch queue's.
    pub name: Option<String>,
    /// Whether it is the thread that crashed.
    pub crashed: bool,
    /// Its frames, innermost first.
    pub frames: Vec<AppleFrame>,
    /// Its registers at the crash (the crashed thread's thread state), as the report names them.
    pub registers: Vec<(String, u64)>,
}

/// One frame of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppleFrame {
    /// Its instruction address.
    pub addr: u64,
    /// The function the report names (Apple symbolicates its own libraries' frames before
    /// writing the report): kept as the frame's function where no stored symbols cover it.
    pub symbol: Option<String>,
}

impl AppleFrame {
    /// A frame at `addr` naming `symbol`, unless the "symbol" is only an address
    /// (`0x7fff61bc6000 + 3114` in an unsymbolicated `.crash`) or `???`.
    fn new(addr: u64, symbol: Option<&str>) -> AppleFrame {
        let symbol = symbol
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.starts_with("0x") && *s != "???")
            .map(|s| s.chars().take(MAX_SYMBOL_CHARS).collect());
        AppleFrame { addr, symbol }
    }
}

/// The longest function name kept from a report.
const MAX_SYMBOL_CHARS: usize = 1024;

/// One binary image (a loaded Mach-O).
#[derive(Debug, Clone, Default)]
pub struct AppleImage {
    /// Load address.
    pub addr: u64,
    /// Size in memory (0 when unknown).
    pub size: u64,
    /// The Mach-O UUID: its debug ID and code ID.
    pub uuid: String,
    /// Its name (`libdyld.dylib`).
    pub name: String,
    /// Its path.
    pub path: String,
    /// Its architecture (`x86_64`, `arm64e`).
    pub arch: Option<String>,
    /// Its version, when the report gives one.
    pub version: Option<String>,
}

/// Why a report could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppleReportError {
    /// Past [`MAX_REPORT_BYTES`].
    #[error("the crash report is {0} bytes; at most {MAX_REPORT_BYTES} are read")]
    TooLarge(usize),
    /// Neither format, or broken.
    #[error("not an Apple crash report: {0}")]
    Unreadable(String),
}

/// Reads a report of either format: `.ips` starts with its JSON header, `.crash` is text.
pub fn parse(report: &[u8]) -> Result<AppleReport, AppleReportError> {
    if report.len() > MAX_REPORT_BYTES {
        return Err(AppleReportError::TooLarge(report.len()));
    }
    let mut parsed = if report.trim_ascii_start().starts_with(b"{") {
        ips::parse(report)?
    } else {
        text::parse(report)?
    };
    parsed.bound();
    if parsed.threads.iter().all(|t| t.frames.is_empty()) {
        return Err(AppleReportError::Unreadable(
            "it has no thread with frames".to_owned(),
        ));
    }
    Ok(parsed)
}

impl AppleReport {
    /// Keeps at most [`MAX_THREADS`] threads (the crashed one always), [`MAX_FRAMES`] frames
    /// each (the innermost), [`MAX_TOTAL_FRAMES`] in all (the crashed thread's first),
    /// [`MAX_IMAGES`] images, and [`MAX_REGISTERS`] registers of the crashed thread (none of others).
    fn bound(&mut self) {
        if self.threads.len() > MAX_THREADS {
            let crashed = self.threads.iter().position(|t| t.crashed);
            if let Some(i) = crashed.filter(|&i| i >= MAX_THREADS) {
                self.threads.swap(i, MAX_THREADS - 1);
            }
            self.threads.truncate(MAX_THREADS);
        }
        let mut budget = MAX_TOTAL_FRAMES;
        for thread in self.threads.iter_mut().filter(|t| t.crashed) {
            thread.frames.truncate(MAX_FRAMES.min(budget));
            budget -= thread.frames.len();
        }
        for thread in self.threads.iter_mut().filter(|t| !t.crashed) {
            thread.frames.truncate(MAX_FRAMES.min(budget));
            budget -= thread.frames.len();
        }
        self.images.truncate(MAX_IMAGES);
        // Only the crashed thread's registers are shown (and a report gives no others).
        for thread in &mut self.threads {
            if thread.crashed {
                thread.registers.truncate(MAX_REGISTERS);
            } else {
                thread.registers = Vec::new();
            }
        }
    }

    /// The signal of an exception type written `EXC_CRASH (SIGABRT)`, or a bare `SIGSEGV`.
    fn signal_of(exception_type: &str) -> Option<String> {
        let inner = match (exception_type.find('('), exception_type.rfind(')')) {
            (Some(open), Some(close)) if open < close => &exception_type[open + 1..close],
            _ => exception_type,
        };
        inner
            .trim()
            .starts_with("SIG")
            .then(|| inner.trim().to_owned())
    }

    /// The address in codes such as `KERN_INVALID_ADDRESS at 0x0000000000000088`.
    fn address_in(codes: &str) -> Option<u64> {
        let at = codes.find(" at 0x")? + " at 0x".len();
        let digits: String = codes[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        u64::from_str_radix(&digits, 16).ok()
    }

    /// The report as a native event's JSON (Sentry's shape, stored and queued like an SDK's):
    /// the crashed thread's exception with its signal and faulting address, every thread's
    /// frames, every image as a `macho` module, OS and device as contexts.
    pub fn to_event_json(&self) -> Value {
        let crashed = self.threads.iter().find(|t| t.crashed);
        let signal = self
            .signal
            .as_deref()
            .map(|name| json!({"name": name, "number": signal_number(name)}));
        let value = match (&self.exception_codes, &self.app_specific) {
            (Some(codes), Some(asi)) => Some(format!("{codes}; {asi}")),
            (codes, asi) => codes.clone().or_else(|| asi.clone()),
        };
        let threads: Vec<Value> = self
            .threads
            .iter()
            .map(|t| {
                let frames: Vec<Value> = t.frames.iter().rev().map(|f| json!({"instruction_addr": format!("{:#x}", f.addr), "function": f.symbol})).collect();
                let mut stacktrace = json!({"frames": frames});
                if !t.registers.is_empty() {
                    let registers: serde_json::Map<String, Value> = t
                        .registers
                        .iter()
                        .map(|(name, value)| (name.clone(), Value::from(format!("{value:#x}"))))
                        .collect();
                    stacktrace["registers"] = Value::Object(registers);
                }
                json!({
                    "id": t.id.to_string(),
                    "name": t.name,
                    "crashed": t.crashed,
                    "stacktrace": stacktrace,
                })
            })
            .collect();
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|i| {
                json!({
                    "type": "macho",
                    "debug_id": i.uuid,
                    "code_id": i.uuid.replace('-', "").to_ascii_lowercase(),
                    "code_file": i.path,
                    "debug_file": i.name,
                    "image_addr": format!("{:#x}", i.addr),
                    "image_size": (i.size > 0).then_some(i.size),
                    "arch": i.arch,
                })
            })
            .collect();
        json!({
            "platform": "native",
            "level": "fatal",
            "timestamp": self.timestamp,
            "release": self.app_version.as_ref().zip(self.process.as_ref()).map(|(v, p)| format!("{p}@{v}")),
            "exception": {"values": [{
                "type": self.exception_type.clone().unwrap_or_else(|| "crash".to_owned()),
                "value": value,
                "thread_id": crashed.map(|t| t.id.to_string()),
                "mechanism": {
                    "type": "apple_crash_report",
                    "handled": false,
                    "meta": {"signal": signal},
                    "data": {"relevant_address": self.fault_address.map(|a| format!("{a:#x}"))},
                },
            }]},
            "threads": {"values": threads},
            "debug_meta": {"images": images},
            "contexts": {
                "os": {"name": self.os},
                "device": {"model": self.hardware, "arch": self.cpu},
                "app": {"app_name": self.process, "app_version": self.app_version},
            },
            "tags": {"apple_report": self.format.map(ReportFormat::name)},
        })
    }

    /// The report as the event processing reads it.
    pub fn to_event(&self) -> Event {
        Event::from_value(&self.to_event_json())
    }
}

/// The number of a signal Apple's reports name.
fn signal_number(name: &str) -> Option<u8> {
    Some(match name {
        "SIGILL" => 4,
        "SIGTRAP" => 5,
        "SIGABRT" => 6,
        "SIGFPE" => 8,
        "SIGKILL" => 9,
        "SIGBUS" => 10,
        "SIGSEGV" => 11,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_addresses_are_read_from_the_exception() {
        assert_eq!(
            AppleReport::signal_of("EXC_CRASH (SIGABRT)").as_deref(),
            Some("SIGABRT")
        );
        assert_eq!(
            AppleReport::signal_of("SIGSEGV").as_deref(),
            Some("SIGSEGV")
        );
        assert_eq!(AppleReport::signal_of("EXC_BREAKPOINT"), None);
        assert_eq!(
            AppleReport::address_in("KERN_INVALID_ADDRESS at 0x0000000000000088"),
            Some(0x88)
        );
        assert_eq!(AppleReport::address_in("SEGV_MAPERR at 0x88"), Some(0x88));
        assert_eq!(AppleReport::address_in("0x0000000000000001, 0x0"), None);
    }

    #[test]
    fn a_frame_keeps_the_function_the_report_names_not_an_address() {
        assert_eq!(
            AppleFrame::new(1, Some("start")).symbol.as_deref(),
            Some("start")
        );
        assert_eq!(AppleFrame::new(1, Some("0x7fff61bc6000")).symbol, None);
        assert_eq!(AppleFrame::new(1, Some("???")).symbol, None);
        let long = "x".repeat(5000);
        assert_eq!(
            AppleFrame::new(1, Some(&long)).symbol.unwrap().len(),
            MAX_SYMBOL_CHARS
        );
    }

    #[test]
    fn too_large_and_frameless_reports_are_refused() {
        let big = vec![b' '; MAX_REPORT_BYTES + 1];
        assert_eq!(
            parse(&big).unwrap_err(),
            AppleReportError::TooLarge(MAX_REPORT_BYTES + 1)
        );
        assert!(matches!(
            parse(b"hello\nworld\n"),
            Err(AppleReportError::Unreadable(_))
        ));
        assert!(matches!(
            parse(b"{\"bug_type\": \"309\"}\n{\"threads\": 3}"),
            Err(AppleReportError::Unreadable(_))
        ));
    }

    #[test]
    fn a_crashed_thread_past_the_thread_cap_is_kept() {
        let mut report = AppleReport {
            threads: (0..MAX_THREADS as u64 + 10)
                .map(|id| AppleThread {
                    id,
                    crashed: id == MAX_THREADS as u64 + 5,
                    frames: vec![
                        AppleFrame::new(0x7fff_6f3a_6cc9, Some("__pthread_kill"));
                        MAX_FRAMES + 7
                    ],
                    // A thread state of ten thousand "registers" (a hostile report).
                    registers: (0..10_000).map(|i| (format!("x{i}"), i)).collect(),
                    ..AppleThread::default()
                })
                .collect(),
            ..AppleReport::default()
        };
        report.bound();
        assert_eq!(report.threads.len(), MAX_THREADS);
        let crashed = report.threads.iter().find(|t| t.crashed).unwrap();
        assert_eq!(crashed.frames.len(), MAX_FRAMES);
        assert_eq!(crashed.registers.len(), MAX_REGISTERS);
        assert!(report
            .threads
            .iter()
            .filter(|t| !t.crashed)
            .all(|t| t.registers.is_empty()));
        let total: usize = report.threads.iter().map(|t| t.frames.len()).sum();
        assert_eq!(total, MAX_TOTAL_FRAMES);
        // Even so bounded, the event fits what the worker reads back.
        report.images = (0..MAX_IMAGES + 5)
            .map(|i| AppleImage {
                addr: 0x7fff_0000_0000 + i as u64 * 0x10_0000,
                size: 0x10_0000,
                uuid: "5fb3a4d7-9f3b-3c32-a4b1-9e2b1e0c9a7d".into(),
                name: "libsystem_pthread.dylib".into(),
                path: "/usr/lib/system/libsystem_pthread.dylib".into(),
                arch: Some("x86_64".into()),
                version: Some("454.80.2".into()),
            })
            .collect();
        report.bound();
        let json = serde_json::to_vec(&report.to_event_json()).unwrap();
        assert!(
            json.len() < crate::events::MAX_EVENT_BYTES,
            "{}",
            json.len()
        );
    }
}
