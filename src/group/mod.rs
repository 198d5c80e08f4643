//! Grouping: the signature a person reads, the fingerprint that groups duplicates, and the
//! crash index that keeps crashes, groups, their counts and their triage state.

pub mod index;
pub mod normalize;
mod report;
pub mod signature;
pub mod spike;
pub mod version;

pub use report::{CrashClass, ProcessedReport, MAX_ATTRIBUTE_VALUE};
