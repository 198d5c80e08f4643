//! The `.crash` text report (Report Version 104 and later), read with getsentry's
//! `apple-crash-report-parser`: its header fields, `Thread N Crashed:` blocks of frames and
//! `Binary Images:` lines, mapped into an [`AppleReport`].

use apple_crash_report_parser::AppleCrashReport;

use super::{AppleFrame, AppleImage, AppleReport, AppleReportError, AppleThread, ReportFormat};

/// Reads a `.crash` report.
pub(super) fn parse(report: &[u8]) -> Result<AppleReport, AppleReportError> {
    let text = std::str::from_utf8(report)
        .map_err(|e| AppleReportError::Unreadable(format!("the report is not UTF-8 text: {e}")))?;
    let parsed: AppleCrashReport = text
        .parse()
        .map_err(|e| AppleReportError::Unreadable(format!("{e}")))?;
    let mut meta = parsed.metadata;
    let exception_type = meta.remove("Exception Type");
    let exception_codes = meta
        .remove("Exception Codes")
        .or_else(|| meta.remove("Exception Subtype"));
    let process = meta
        .remove("Process")
        .map(|p| p.split(" [").next().unwrap_or_default().to_owned());
    Ok(AppleReport {
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
            })
            .collect(),
        images: parsed
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
            .collect(),
    })
}

/// A thread's name without the punctuation of `Thread 0 Crashed:: Dispatch queue: NAME`.
fn queue_name(name: &str) -> String {
    let name = name.trim_start_matches(':').trim();
    name.strip_prefix("Dispatch queue:")
        .unwrap_or(name)
        .trim()
        .to_owned()
}
