//! Durable crash ingest: what crash reporters upload is stored before it is acknowledged, then a
//! persistent queue feeds the processing workers.
//!
//! A [`RawCrash`] (ID, annotations, the object keys of its dumps and attachments) is written as
//! `crashes/{yyyymmdd}/{id}/raw.json` after its files, then its row is committed to the
//! [`queue::IngestQueue`]; only then does the client get its 200. Workers ([`worker`]) claim
//! rows, run the [`crate::pipeline::Pipeline`], record the result in the crash index (exactly
//! once: recording is keyed by the crash ID) and mark the row done.

pub mod queue;
pub mod throttle;
pub mod worker;

use bytes::Bytes;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::group::ProcessedReport;
use crate::store::{key_segment, ObjectKey, ObjectStore, PutBody, StoreError};

/// The multipart field holding the main minidump (Breakpad, Crashpad, Electron, Sentry).
pub const MAIN_DUMP: &str = "upload_file_minidump";

/// A received crash, as stored before processing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RawCrash {
    /// The crash ID (a UUID; Breakpad clients see it as `bp-<id>`).
    pub id: String,
    /// Receipt time, Unix seconds.
    pub received_at: i64,
    /// Which client protocol brought it: `breakpad`, `sentry`, `unreal`, `backtrace`.
    pub client: String,
    /// The project it was filed under (by its ingest key; the default project without one).
    /// Raw crashes stored before projects existed read as the default project (1).
    #[serde(default = "default_project_id")]
    pub project_id: i64,
    /// Annotations from form fields, `extra.json`, the query string, or the client's metadata.
    pub annotations: BTreeMap<String, String>,
    /// Minidumps by field name (`upload_file_minidump`, `upload_file_minidump_browser`…) → key.
    pub dumps: BTreeMap<String, String>,
    /// Other files by name → key.
    pub attachments: BTreeMap<String, String>,
    /// The key of the Sentry event JSON of an event received without a minidump (it is
    /// processed as an event); `None` for minidump crashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl RawCrash {
    /// Every received file: (name, what it is, object key) — the dumps (`minidump`), the
    /// event (`event.json`, `event`) and the attachments (`attachment`), in that order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &'static str, &str)> {
        let dumps = self
            .dumps
            .iter()
            .map(|(name, key)| (name.as_str(), "minidump", key.as_str()));
        let event = self
            .event
            .iter()
            .map(|key| ("event.json", "event", key.as_str()));
        let attachments = self
            .attachments
            .iter()
            .map(|(name, key)| (name.as_str(), "attachment", key.as_str()));
        dumps.chain(event).chain(attachments)
    }
}

fn default_project_id() -> i64 {
    1
}

/// A new crash ID: a UUIDv7, so IDs sort by receipt time and the crash index's B-trees take
/// new crashes at their right edge (a random UUIDv4 dirties a page per crash all over them).
pub fn new_crash_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The `yyyymmdd` folder of a receipt time.
pub fn day_of(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day())
}

/// Where a crash's files live: `crashes/{yyyymmdd}/{id}/`.
pub fn crash_folder(received_at: i64, id: &str) -> String {
    format!("crashes/{}/{}", day_of(received_at), key_segment(id))
}

/// The key of a crash's processed result.
pub fn processed_key(received_at: i64, id: &str) -> String {
    format!("{}/processed.json", crash_folder(received_at, id))
}

/// The key of a crash's `raw.json`.
pub fn raw_key(received_at: i64, id: &str) -> String {
    format!("{}/raw.json", crash_folder(received_at, id))
}

fn key(text: String) -> ObjectKey {
    ObjectKey::new(text).expect("crash keys are built from safe parts")
}

/// Builds a raw crash while its files are stored one by one.
pub struct RawCrashBuilder {
    crash: RawCrash,
}

impl RawCrashBuilder {
    /// A new crash received now from `client`, filed under `project_id`.
    pub fn new(client: &str, project_id: i64) -> RawCrashBuilder {
        RawCrashBuilder {
            crash: RawCrash {
                id: new_crash_id(),
                received_at: crate::clock::now(),
                client: client.to_owned(),
                project_id,
                annotations: BTreeMap::new(),
                dumps: BTreeMap::new(),
                attachments: BTreeMap::new(),
                event: None,
            },
        }
    }

    /// The crash so far.
    pub fn crash(&self) -> &RawCrash {
        &self.crash
    }

    /// Adds an annotation (a later value for the same name wins).
    pub fn annotate(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.crash.annotations.insert(name.into(), value.into());
    }

    /// Stores `dump` as the dump named `field` (durably, before returning).
    pub async fn add_dump(
        &mut self,
        objects: &dyn ObjectStore,
        field: &str,
        dump: Bytes,
    ) -> Result<(), StoreError> {
        let object = key(format!(
            "{}/dump-{}",
            crash_folder(self.crash.received_at, &self.crash.id),
            key_segment(field)
        ));
        objects.put(&object, PutBody::Bytes(dump)).await?;
        self.crash
            .dumps
            .insert(field.to_owned(), object.to_string());
        Ok(())
    }

    /// Stores `file` as the attachment `name`.
    pub async fn add_attachment(
        &mut self,
        objects: &dyn ObjectStore,
        name: &str,
        file: Bytes,
    ) -> Result<(), StoreError> {
        let mut unique = name.to_owned();
        let mut n = 1;
        while self.crash.attachments.contains_key(&unique) {
            n += 1;
            unique = format!("{name}.{n}");
        }
        let object = key(format!(
            "{}/attachment-{}",
            crash_folder(self.crash.received_at, &self.crash.id),
            self.crash.attachments.len() + 1
        ));
        objects.put(&object, PutBody::Bytes(file)).await?;
        self.crash.attachments.insert(unique, object.to_string());
        Ok(())
    }

    /// Stores `json` as the crash's event (an error event without a minidump).
    pub async fn set_event(
        &mut self,
        objects: &dyn ObjectStore,
        json: Bytes,
    ) -> Result<(), StoreError> {
        let object = key(format!(
            "{}/event.json",
            crash_folder(self.crash.received_at, &self.crash.id)
        ));
        objects.put(&object, PutBody::Bytes(json)).await?;
        self.crash.event = Some(object.to_string());
        Ok(())
    }

    /// Writes `raw.json` (the commit point of the files) and returns the crash.
    pub async fn finish(self, objects: &dyn ObjectStore) -> Result<RawCrash, StoreError> {
        let json = serde_json::to_vec_pretty(&self.crash).expect("raw crashes serialize");
        objects
            .put(
                &key(raw_key(self.crash.received_at, &self.crash.id)),
                PutBody::Bytes(json.into()),
            )
            .await?;
        Ok(self.crash)
    }
}

/// Reads a stored raw crash back.
pub async fn load_raw(
    objects: &dyn ObjectStore,
    raw_key: &str,
) -> Result<Option<RawCrash>, String> {
    let object = ObjectKey::new(raw_key.to_owned()).map_err(|e| e.to_string())?;
    let Some(bytes) = objects
        .read_all(&object, 64 << 20)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{raw_key} is unreadable: {e}"))
}

/// Largest processed crash read back (the JSON of a dump with thousands of threads).
const MAX_PROCESSED_BYTES: u64 = 256 << 20;

/// Reads a kept processed crash (`processed.json`) back; `None` when it is gone.
pub async fn read_processed(
    objects: &dyn ObjectStore,
    key: &str,
) -> Result<Option<bytes::Bytes>, String> {
    let key = ObjectKey::new(key.to_owned()).map_err(|e| e.to_string())?;
    objects
        .read_all(&key, MAX_PROCESSED_BYTES)
        .await
        .map_err(|e| e.to_string())
}

/// Why recording a processed crash failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The crash index failed.
    #[error(transparent)]
    Index(#[from] crate::group::index::IndexError),
}

/// The first annotation present among `keys`, trimmed, if not empty.
pub fn first_of(annotations: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| annotations.get(*k))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The stored and returned processed-crash JSON: the crash report plus what the index decided.
struct RecordedCrash<'a, R> {
    report: &'a R,
    crash_id: &'a str,
    group_id: i64,
    payload_kept: bool,
}

impl<R: ProcessedReport> serde::Serialize for RecordedCrash<'_, R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.report.serialize_fields(&mut map)?;
        map.serialize_entry("crash_id", self.crash_id)?;
        map.serialize_entry("group_id", &self.group_id)?;
        map.serialize_entry("payload_kept", &self.payload_kept)?;
        map.end()
    }
}

/// Where a processed crash goes.
pub struct Recorder<'a> {
    /// The crash index.
    pub index: &'a crate::group::index::CrashIndex,
    /// The object store for processed payloads.
    pub objects: &'a dyn ObjectStore,
    /// Annotations naming the user, first present wins.
    pub user_annotations: &'a [String],
    /// Whether the crash is being reprocessed: its record replaces the earlier one.
    pub replaces_earlier: bool,
}

/// A recorded crash's processed JSON: the report with `crash_id`, `group_id` and
/// `payload_kept` added.
pub fn processed_json<R: ProcessedReport>(
    report: &R,
    crash_id: &str,
    recorded: &crate::group::index::Recorded,
) -> bytes::Bytes {
    let json = RecordedCrash {
        report,
        crash_id,
        group_id: recorded.group_id,
        payload_kept: recorded.keep_payload,
    };
    // sonic-rs writes the same JSON as serde_json from the same `Serialize` impls, escaping
    // strings with SIMD: this JSON (up to 100 KB of function names and paths for a dump with
    // inlines) was a sixth of a processed crash's server time, 18-29 % less with it
    // (docs/PERFORMANCE.md).
    let mut out = Vec::with_capacity(report.json_size_hint());
    sonic_rs::to_writer(&mut out, &json).expect("crash reports serialize");
    bytes::Bytes::from(out)
}

impl Recorder<'_> {
    /// Records a processed crash in the index and, when the payload budget keeps it, stores its
    /// [`processed_json`] at [`processed_key`]. Returns the index's decision and the JSON it
    /// stored, if it did (most crashes of a busy group are only counted, and serializing
    /// their JSON would cost more than processing them).
    pub async fn record<R: ProcessedReport>(
        &self,
        id: &str,
        project_id: i64,
        received_at: i64,
        annotations: &BTreeMap<String, String>,
        report: &R,
    ) -> Result<(crate::group::index::Recorded, Option<bytes::Bytes>), RecordError> {
        let user_keys: Vec<&str> = self.user_annotations.iter().map(String::as_str).collect();
        let crash = crate::group::index::NewCrash {
            attributes: crate::group::index::CrashAttributes {
                id: id.to_owned(),
                project_id,
                received_at,
                product: first_of(annotations, &["product", "ProductName", "prod"]),
                release: first_of(annotations, &["release", "version", "Version", "ver"]),
                platform: report.platform(),
                cpu: report.cpu(),
                user_id: first_of(annotations, &user_keys),
                annotations: annotations.clone(),
                fingerprint: report.fingerprint().to_owned(),
                signature: report.signature().to_owned(),
                fault_class: report.fault_class(),
                kind: report.kind(),
            },
            payload_key: processed_key(received_at, id),
            top_frames: report.signature_frames().iter().take(5).cloned().collect(),
            replaces_earlier: self.replaces_earlier,
            facts: report.facts(),
        };
        let mut recorded = self.index.record(&crash).await?;
        if !recorded.keep_payload {
            return Ok((recorded, None));
        }
        let json = processed_json(report, id, &recorded);
        let put = self
            .objects
            .put_regenerable(
                &key(crash.payload_key.clone()),
                PutBody::Bytes(json.clone()),
            )
            .await;
        if let Err(e) = put {
            tracing::error!(crash_id = %id, error = %e, "could not store the crash payload");
            self.index.drop_payload(id).await?;
            recorded.keep_payload = false;
            return Ok((recorded, None));
        }
        Ok((recorded, Some(json)))
    }
}
