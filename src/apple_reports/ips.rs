//! The `.ips` report (macOS 12 and later, `bug_type` 309): a one-line JSON header (app name and
//! version, OS version, incident ID), then a JSON body: `exception` (type, signal, subtype,
//! codes), `faultingThread`, `threads` (frames as `imageIndex` + `imageOffset`, the crashed
//! one's registers as `threadState`), `usedImages`
//! (base, size, UUID, path, name, arch), `asi` (Application Specific Information per library),
//! `osVersion`, `modelCode`, `cpuType`. Read leniently: a field missing or of another shape is
//! left out, never an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{AppleFrame, AppleImage, AppleReport, AppleReportError, AppleThread, ReportFormat};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Header {
    app_name: Option<String>,
    name: Option<String>,
    app_version: Option<String>,
    os_version: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Body {
    proc_name: Option<String>,
    capture_time: Option<String>,
    model_code: Option<String>,
    cpu_type: Option<String>,
    os_version: Value,
    exception: Exception,
    faulting_thread: Option<usize>,
    threads: Vec<Thread>,
    used_images: Vec<Image>,
    asi: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Exception {
    #[serde(rename = "type")]
    kind: Option<String>,
    signal: Option<String>,
    subtype: Option<String>,
    codes: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Thread {
    name: Option<String>,
    queue: Option<String>,
    triggered: bool,
    frames: Vec<Frame>,
    thread_state: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Frame {
    image_index: Option<usize>,
    image_offset: Option<u64>,
    symbol: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Image {
    base: Option<u64>,
    size: Option<u64>,
    uuid: Option<String>,
    path: Option<String>,
    name: Option<String>,
    arch: Option<String>,
    #[serde(rename = "CFBundleShortVersionString")]
    version: Option<String>,
}

/// A thread's `threadState` as registers: ARM64's numbered `x` array as `x0`…, each other
/// entry an object with its `value` (`"pc": {"value": 4301…, "matchesCrashFrame": 1}`);
/// `flavor` and entries without a number are not registers.
fn thread_state(state: &BTreeMap<String, Value>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (name, entry) in state {
        match entry {
            Value::Array(numbered) => out.extend(
                numbered
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| Some((format!("{name}{i}"), r["value"].as_u64()?))),
            ),
            _ => out.extend(entry["value"].as_u64().map(|v| (name.clone(), v))),
        }
    }
    out
}

/// Reads an `.ips` report.
pub(super) fn parse(report: &[u8]) -> Result<AppleReport, AppleReportError> {
    let bad = |what: &str, e: serde_json::Error| {
        AppleReportError::Unreadable(format!("the .ips report's {what} is not JSON: {e}"))
    };
    let mut documents = serde_json::Deserializer::from_slice(report).into_iter::<Value>();
    let header = documents
        .next()
        .ok_or_else(|| AppleReportError::Unreadable("the .ips report is empty".to_owned()))?
        .map_err(|e| bad("header", e))?;
    let body = documents
        .next()
        .ok_or_else(|| {
            AppleReportError::Unreadable(
                "the .ips report has a header but no body (the second JSON document)".to_owned(),
            )
        })?
        .map_err(|e| bad("body", e))?;
    let header: Header = serde_json::from_value(header).unwrap_or_default();
    let body: Body = serde_json::from_value(body)
        .map_err(|e| AppleReportError::Unreadable(format!("the .ips report's body: {e}")))?;
    let images: Vec<AppleImage> = body.used_images.iter().map(image).collect();
    let threads = body
        .threads
        .iter()
        .enumerate()
        // Threads are numbered as the report lists them (`id` is the kernel's thread ID).
        .map(|(i, t)| AppleThread {
            id: i as u64,
            name: t.name.clone().or_else(|| t.queue.clone()),
            crashed: t.triggered || body.faulting_thread == Some(i),
            frames: t
                .frames
                .iter()
                .map(|f| {
                    let base = f
                        .image_index
                        .and_then(|i| body.used_images.get(i))
                        .and_then(|i| i.base)
                        .unwrap_or(0);
                    let addr = base.saturating_add(f.image_offset.unwrap_or(0));
                    AppleFrame::new(addr, f.symbol.as_deref())
                })
                .collect(),
            registers: thread_state(&t.thread_state),
        })
        .collect();
    let exception = &body.exception;
    let exception_type = exception.kind.as_ref().map(|kind| match &exception.signal {
        Some(signal) => format!("{kind} ({signal})"),
        None => kind.clone(),
    });
    let codes = exception
        .subtype
        .clone()
        .or_else(|| exception.codes.clone());
    Ok(AppleReport {
        format: Some(ReportFormat::Ips),
        process: body.proc_name.clone().or(header.app_name).or(header.name),
        app_version: header.app_version,
        timestamp: body.capture_time.clone().or(header.timestamp),
        os: os_name(&body.os_version).or(header.os_version),
        hardware: body.model_code.clone(),
        cpu: body.cpu_type.clone(),
        signal: exception.signal.clone(),
        fault_address: codes.as_deref().and_then(AppleReport::address_in),
        exception_type,
        exception_codes: codes,
        app_specific: application_specific(&body.asi),
        threads,
        images,
    })
}

fn image(i: &Image) -> AppleImage {
    AppleImage {
        addr: i.base.unwrap_or(0),
        size: i.size.unwrap_or(0),
        uuid: i.uuid.clone().unwrap_or_default(),
        name: i.name.clone().unwrap_or_default(),
        path: i.path.clone().unwrap_or_default(),
        arch: i.arch.clone(),
        version: i.version.clone(),
    }
}

/// `osVersion` as `{"train": "macOS 12.3", "build": "21E230"}`.
fn os_name(os: &Value) -> Option<String> {
    let train = os["train"].as_str()?;
    Some(match os["build"].as_str() {
        Some(build) => format!("{train} ({build})"),
        None => train.to_owned(),
    })
}

/// `asi`: each library's messages (`{"libsystem_c.dylib": ["abort() called"]}`), one per line.
fn application_specific(asi: &BTreeMap<String, Value>) -> Option<String> {
    let lines: Vec<&str> = asi
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arm64_thread_state_gives_numbered_and_named_registers() {
        let state: BTreeMap<String, Value> = serde_json::from_value(serde_json::json!({
            "x": [{"value": 0}, {"value": 4_294_967_296u64}, {"value": 7}],
            "flavor": "ARM_THREAD_STATE64",
            "pc": {"value": 4_301_276_000u64, "matchesCrashFrame": 1},
            "esr": {"value": 2_449_473_606u64, "description": "(Data Abort) byte read Translation fault"},
            "lr": {"value": "not a number"},
        }))
        .unwrap();
        assert_eq!(
            thread_state(&state),
            [
                ("esr".to_owned(), 2_449_473_606),
                ("pc".to_owned(), 4_301_276_000),
                ("x0".to_owned(), 0),
                ("x1".to_owned(), 4_294_967_296),
                ("x2".to_owned(), 7),
            ]
        );
    }
}
