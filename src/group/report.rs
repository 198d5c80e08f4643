//! What the crash index needs of a processed crash, whether a minidump went through the
//! pipeline or an SDK's event through `events/`: one vocabulary both producers implement and
//! the recorder (`ingest/`) consumes, so neither producer imports the recorder.

use crate::group::index::CrashKind;

/// What the crash index needs of a processed crash, whether a minidump went through the
/// pipeline or an SDK's event through `events/`.
pub trait ProcessedReport: Sync {
    /// Minidump or event.
    fn kind(&self) -> CrashKind;
    /// Operating system, when known.
    fn platform(&self) -> Option<String>;
    /// CPU architecture, when known.
    fn cpu(&self) -> Option<String>;
    /// The grouping hash.
    fn fingerprint(&self) -> &str;
    /// The signature people read.
    fn signature(&self) -> &str;
    /// The signature's frames (the first few go to alerts and tickets).
    fn signature_frames(&self) -> &[String];
    /// The fault class.
    fn fault_class(&self) -> &str;
    /// Writes the processed JSON's fields (docs/OUTPUT.md) into `map`.
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
    /// About how many bytes its JSON takes.
    fn json_size_hint(&self) -> usize {
        16 << 10
    }
}
