//! What the crash index needs of a processed crash, whether a minidump went through the
//! pipeline or an SDK's event through `events/`: one vocabulary both producers implement and
//! the recorder (`ingest/`) consumes, so neither producer imports the recorder.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::classify::FaultClass;
use crate::group::index::{CrashKind, IndexError};

/// What kind of failure a crash is: a minidump's fault class (or a native SDK event's), or
/// what another SDK event reports: an exception, or only a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashClass {
    /// A class of the fault catalogue (`null-read`, `abort`, …).
    Fault(FaultClass),
    /// An SDK event with an exception (JavaScript, Python, …).
    Exception,
    /// An SDK event with only a message.
    Message,
}

impl CrashClass {
    /// Its name in JSON, queries, forms and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashClass::Fault(class) => class.as_str(),
            CrashClass::Exception => "exception",
            CrashClass::Message => "message",
        }
    }

    /// The class named `name`, if there is one.
    pub fn named(name: &str) -> Option<CrashClass> {
        match name {
            "exception" => Some(CrashClass::Exception),
            "message" => Some(CrashClass::Message),
            _ => FaultClass::ALL
                .into_iter()
                .find(|c| c.as_str() == name)
                .map(CrashClass::Fault),
        }
    }

    /// The class a filter names, or the error that lists them (the caller's mistake: 4xx).
    pub fn parse(name: &str) -> Result<CrashClass, IndexError> {
        CrashClass::named(name).ok_or_else(|| {
            IndexError::Rejected(format!(
                "fault_class must be one of {}, not {name:?}",
                CrashClass::all()
                    .map(CrashClass::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Every class, the catalogue's first.
    pub fn all() -> impl Iterator<Item = CrashClass> {
        FaultClass::ALL
            .into_iter()
            .map(CrashClass::Fault)
            .chain([CrashClass::Exception, CrashClass::Message])
    }
}

impl From<FaultClass> for CrashClass {
    fn from(class: FaultClass) -> CrashClass {
        CrashClass::Fault(class)
    }
}

impl std::fmt::Display for CrashClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CrashClass {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CrashClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CrashClass, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        CrashClass::named(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown crash class {name:?}")))
    }
}

/// The longest attribute value (an annotation's, a fact's) the correlations compare: longer
/// ones are IDs and logs, not attributes.
pub const MAX_ATTRIBUTE_VALUE: usize = 200;

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
    fn fault_class(&self) -> CrashClass;
    /// What the correlations compare besides the annotations (docs/EVIDENCE.md): OS version,
    /// CPU, module versions, the fault's rule… A few, each short.
    fn facts(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// Writes the processed JSON's fields (docs/OUTPUT.md) into `map`.
    fn serialize_fields<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error>;
    /// About how many bytes its JSON takes.
    fn json_size_hint(&self) -> usize {
        16 << 10
    }
}
