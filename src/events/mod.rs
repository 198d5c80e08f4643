//! Error events from Sentry SDKs (`/api/{project}/envelope/` and `/store/`): what an event says
//! (`event.rs`), read leniently so that a field in an unexpected shape costs that field, not the
//! event; the envelope framing (`envelope.rs`); symbolication of its native and JavaScript
//! frames (`process.rs`) and de-obfuscation of its Java frames (`java.rs`) into a report
//! (`report.rs`), and how events group (`grouping.rs`). The
//! worker runs a stored event through [`process::EventProcessor`] and records the
//! [`report::EventReport`] in the crash index like a processed minidump.

pub mod envelope;
pub mod event;
pub mod grouping;
mod java;
pub mod process;
pub mod report;
pub mod stacks;

pub use event::{Event, EventException, EventFrame, EventImage};

/// Largest event JSON accepted (Sentry's own limit is 1 MiB); the worker reads no more back.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
