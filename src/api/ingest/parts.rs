//! What a crash body holds: the body itself (gzip decoded, multipart framing checked), multipart
//! parts (dumps, attachments, annotations, Sentry's event fields), compressed dump parts, and
//! Unreal crash containers. Bodies and parts stay in memory up to a few megabytes and spill to
//! unnamed scratch files past that ([`Spill`]): a typical crash creates no file until it is
//! stored.

use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use super::{unavailable, Client, Refusal};
use crate::app::App;
use crate::http::FramingGuard;
use crate::http::{is_body_timeout, Spill};
use crate::ingest::{RawCrashBuilder, MAIN_DUMP};

/// Files received with a crash: (dump field, bytes) and (attachment name, bytes).
type ReceivedFiles = (Vec<(String, Bytes)>, Vec<(String, Bytes)>);

/// How a body is compressed (`Content-Encoding`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyEncoding {
    /// As it is.
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate` (zlib).
    Deflate,
    /// `br` (Sentry's Python SDK uses it when brotli is installed).
    Brotli,
    /// `zstd`.
    Zstd,
}

impl BodyEncoding {
    /// The encoding a `Content-Encoding` value names; `None` for one we cannot decode.
    pub(super) fn from_header(value: Option<&str>) -> Option<BodyEncoding> {
        let Some(value) = value.map(str::trim) else {
            return Some(BodyEncoding::Identity);
        };
        Some(match value.to_ascii_lowercase().as_str() {
            "" | "identity" => BodyEncoding::Identity,
            "gzip" | "x-gzip" => BodyEncoding::Gzip,
            "deflate" => BodyEncoding::Deflate,
            "br" => BodyEncoding::Brotli,
            "zstd" => BodyEncoding::Zstd,
            _ => return None,
        })
    }
}

/// Reads `body` (decoded as `encoding` says) within the byte caps; a multipart body's framing is
/// checked on the way (`guard`), so a body without its boundary fails within the first few
/// kilobytes instead of being read whole.
pub(super) async fn read_body(
    state: &App,
    body: Body,
    encoding: BodyEncoding,
    mut guard: Option<FramingGuard>,
) -> Result<Bytes, Refusal> {
    let limits = &state.config.ingest;
    let mut raw_bytes = 0u64;
    let max_body = limits.max_body_bytes;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        raw_bytes += chunk.len() as u64;
        if raw_bytes > max_body {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "body",
            ));
        }
        Ok(chunk)
    });
    let reader = StreamReader::new(stream);
    let buffered = tokio::io::BufReader::new(reader);
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match encoding {
        BodyEncoding::Identity => Box::pin(buffered),
        BodyEncoding::Gzip => Box::pin(async_compression::tokio::bufread::GzipDecoder::new(
            buffered,
        )),
        BodyEncoding::Deflate => Box::pin(async_compression::tokio::bufread::ZlibDecoder::new(
            buffered,
        )),
        BodyEncoding::Brotli => Box::pin(async_compression::tokio::bufread::BrotliDecoder::new(
            buffered,
        )),
        BodyEncoding::Zstd => Box::pin(async_compression::tokio::bufread::ZstdDecoder::new(
            buffered,
        )),
    };
    let compressed = encoding != BodyEncoding::Identity;
    let mut spill = Spill::new(state.symbols.scratch_root());
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                return Err(Refusal::TooLarge(format!(
                    "the body is larger than ingest.max_body_bytes ({max_body})"
                )))
            }
            Err(e) if is_body_timeout(&e) || e.get_ref().is_some_and(|e| is_body_timeout(e)) => {
                return Err(Refusal::TimedOut)
            }
            Err(_) if encoding == BodyEncoding::Gzip => return Err(Refusal::Malformed("bad_gzip")),
            Err(_) if compressed => return Err(Refusal::Malformed("bad_content_encoding")),
            Err(e) => return Err(Refusal::Unavailable(format!("reading the body: {e}"))),
        };
        written += n as u64;
        if let Some(guard) = &mut guard {
            guard
                .check(&buf[..n])
                .map_err(|_| Refusal::Malformed("invalid_payload_structure"))?;
        }
        if written > limits.max_decompressed_bytes {
            return Err(Refusal::TooLarge(format!(
                "the body expands past ingest.max_decompressed_bytes ({})",
                limits.max_decompressed_bytes
            )));
        }
        spill.push(&buf[..n]).await.map_err(unavailable)?;
    }
    spill.finish().await.map_err(unavailable)
}

/// If `part` holds a gzip, zstd, bzip2 or xz stream (a Sentry SDK may compress the dump part),
/// its decompressed bytes within `limit`; otherwise `part` itself.
pub(super) async fn decompress_part(
    part: Bytes,
    limit: u64,
    scratch: &Path,
) -> Result<Bytes, Refusal> {
    use async_compression::tokio::bufread as dec;
    let input: &[u8] = &part;
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send + '_>> =
        if input.starts_with(&[0x1f, 0x8b]) {
            Box::pin(dec::GzipDecoder::new(input))
        } else if input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::pin(dec::ZstdDecoder::new(input))
        } else if input.starts_with(b"BZh") {
            Box::pin(dec::BzDecoder::new(input))
        } else if input.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Box::pin(dec::XzDecoder::new(input))
        } else {
            return Ok(part.clone());
        };
    let mut out = Spill::new(scratch);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|_| Refusal::Malformed("bad_compression"))?;
        if n == 0 {
            break;
        }
        if out.received() + n as u64 > limit {
            return Err(Refusal::TooLarge(format!(
                "the dump expands past ingest.max_decompressed_bytes ({limit})"
            )));
        }
        out.push(&buf[..n]).await.map_err(unavailable)?;
    }
    out.finish().await.map_err(unavailable)
}

/// Sets annotations from a JSON object: strings as they are, other values as JSON text.
fn annotate_json(
    builder: &mut RawCrashBuilder,
    object: &serde_json::Map<String, Value>,
    prefix: &str,
) {
    for (key, value) in object {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        builder.annotate(format!("{prefix}{key}"), value);
    }
}

/// The well-known fields of a Sentry event (JSON or `sentry[...]` fields) as annotations.
fn annotate_sentry(builder: &mut RawCrashBuilder, event: &Value) {
    for (field, annotation) in [
        ("release", "release"),
        ("environment", "environment"),
        ("dist", "dist"),
        ("platform", "sentry_platform"),
    ] {
        if let Some(v) = event.get(field).and_then(Value::as_str) {
            builder.annotate(annotation, v);
        }
    }
    if let Some(user) = event.get("user") {
        for (field, annotation) in [
            ("id", "user_id"),
            ("username", "username"),
            ("email", "user_email"),
        ] {
            match user.get(field) {
                Some(Value::String(s)) => builder.annotate(annotation, s.clone()),
                Some(Value::Number(n)) => builder.annotate(annotation, n.to_string()),
                _ => {}
            }
        }
    }
    if let Some(Value::Object(tags)) = event.get("tags") {
        annotate_json(builder, tags, "tag.");
    }
}

/// `sentry[user][id]` → `["user", "id"]`.
fn sentry_path(name: &str) -> Option<Vec<&str>> {
    let rest = name.strip_prefix("sentry[")?.strip_suffix(']')?;
    Some(rest.split("][").collect())
}

/// Inserts `value` at `path` in a JSON object tree.
fn insert_path(root: &mut Value, path: &[&str], value: String) {
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let map = node.as_object_mut().expect("just made an object");
        if i == path.len() - 1 {
            map.insert(part.to_string(), Value::String(value));
            return;
        }
        node = map.entry(part.to_string()).or_insert_with(|| json!({}));
    }
}

/// How a received body is handed to multer: 64 KiB at a time, every piece ready at once. The
/// first piece holds the first boundary (the framing guard allows a preamble of 16 KiB): multer
/// fails a body whose stream ends in the same poll that brings its first boundary.
const PIECE: usize = 64 * 1024;

pub(super) fn pieces(
    body: Bytes,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let len = body.len();
    futures::stream::iter(
        (0..len)
            .step_by(PIECE)
            .map(move |at| Ok(body.slice(at..(at + PIECE).min(len)))),
    )
}

/// Reads a multipart body into `builder` (large parts spill into `scratch`). Returns the parts
/// holding minidumps and other files.
pub(super) async fn read_multipart(
    client: Client,
    max_field: u64,
    boundary: String,
    body: Bytes,
    scratch: &Path,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    let mut multipart = multer::Multipart::new(pieces(body), boundary);
    let mut dumps = Vec::new();
    let mut files = Vec::new();
    let mut sentry_fields = json!({});
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(Refusal::Malformed("invalid_payload_structure")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let is_json = field
            .content_type()
            .is_some_and(|m| m.essence_str() == "application/json");
        // Files (dumps, attachments, Sentry's event) may be large and spill to scratch; text
        // fields (a Crashpad upload has dozens) stay within ingest.max_field_bytes.
        let keep_as_file = name.starts_with(MAIN_DUMP)
            || file_name.is_some()
            || (client == Client::Sentry && name == "sentry");
        let mut text_bytes = Vec::new();
        let mut out = keep_as_file.then(|| Spill::new(scratch));
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => match &mut out {
                    Some(out) => out.push_bytes(chunk).await.map_err(unavailable)?,
                    None if (text_bytes.len() + chunk.len()) as u64 > max_field => {
                        return Err(Refusal::TooLarge(format!(
                            "the text part {name:?} is larger than ingest.max_field_bytes ({max_field})"
                        )))
                    }
                    None => text_bytes.extend_from_slice(&chunk),
                },
                Ok(None) => break,
                Err(_) => return Err(Refusal::Malformed("invalid_payload_structure")),
            }
        }
        let data = match out {
            Some(out) => out.finish().await.map_err(unavailable)?,
            None => Bytes::from(text_bytes),
        };
        let small_text = || -> Result<String, Refusal> {
            if data.len() as u64 > max_field {
                return Err(Refusal::TooLarge(format!(
                    "the text part {name:?} is larger than ingest.max_field_bytes ({max_field})"
                )));
            }
            Ok(String::from_utf8_lossy(&data).into_owned())
        };
        if name.starts_with(MAIN_DUMP) {
            dumps.push((name, data));
        } else if name == "extra"
            || file_name.as_deref() == Some("extra.json")
            || (is_json && name == "extra.json")
        {
            // Firefox's annotations.
            let text = small_text()?;
            let value: Value =
                serde_json::from_str(&text).map_err(|_| Refusal::Malformed("invalid_json"))?;
            let Value::Object(object) = &value else {
                return Err(Refusal::Malformed("invalid_json_value"));
            };
            annotate_json(builder, object, "");
        } else if client == Client::Sentry && name == "sentry" {
            let text = small_text()?;
            let value: Value =
                serde_json::from_str(&text).map_err(|_| Refusal::Malformed("invalid_json"))?;
            if !value.is_object() {
                return Err(Refusal::Malformed("invalid_json_value"));
            }
            annotate_sentry(builder, &value);
            files.push(("sentry.json".to_owned(), data));
        } else if let (Client::Sentry, Some(keys)) = (client, sentry_path(&name)) {
            insert_path(&mut sentry_fields, &keys, small_text()?);
        } else if file_name.is_some() {
            files.push((file_name.filter(|f| !f.is_empty()).unwrap_or(name), data));
        } else {
            let text = small_text()?;
            builder.annotate(name, text);
        }
    }
    if sentry_fields.as_object().is_some_and(|o| !o.is_empty()) {
        annotate_sentry(builder, &sentry_fields);
    }
    Ok((dumps, files))
}

/// An Unreal Engine crash container: its minidump, its context XML (as annotations) and the
/// other files (logs, config) as attachments.
pub(super) fn read_unreal(
    body: &Bytes,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    use symbolic::unreal::{Unreal4Crash, Unreal4FileType};
    if body.is_empty() {
        return Err(Refusal::Malformed("invalid_unreal_crash"));
    }
    let crash =
        Unreal4Crash::parse(body).map_err(|_| Refusal::Malformed("invalid_unreal_crash"))?;
    if let Ok(Some(context)) = crash.context() {
        if let Some(p) = context.runtime_properties {
            let fields = [
                ("crash_guid", p.crash_guid),
                ("game_name", p.game_name),
                ("executable_name", p.executable_name),
                ("build_configuration", p.build_configuration),
                ("platform_name", p.platform_name),
                ("engine_version", p.engine_version.clone()),
                ("version", p.build_version.or(p.engine_version)),
                ("username", p.username),
                ("login_id", p.login_id),
                ("epic_account_id", p.epic_account_id),
                ("error_message", p.error_message),
                ("crash_type", p.crash_type),
                ("machine_id", p.machine_id),
            ];
            for (name, value) in fields {
                if let Some(value) = value.filter(|v| !v.is_empty()) {
                    builder.annotate(name, value);
                }
            }
            if let Some(game) = builder.crash().annotations.get("game_name").cloned() {
                builder.annotate("product", game);
            }
            if let Some(user) = builder.crash().annotations.get("login_id").cloned() {
                builder.annotate("user_id", user);
            }
        }
    }
    let mut dumps = Vec::new();
    let mut files = Vec::new();
    for file in crash.files() {
        let data = Bytes::copy_from_slice(file.data());
        if file.ty() == Unreal4FileType::Minidump && dumps.is_empty() {
            dumps.push((MAIN_DUMP.to_owned(), data));
        } else {
            files.push((file.name().to_owned(), data));
        }
    }
    Ok((dumps, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentry_bracket_fields_build_an_event() {
        let mut event = json!({});
        insert_path(
            &mut event,
            &sentry_path("sentry[release]").unwrap(),
            "1.2.3".into(),
        );
        insert_path(
            &mut event,
            &sentry_path("sentry[user][id]").unwrap(),
            "42".into(),
        );
        insert_path(
            &mut event,
            &sentry_path("sentry[tags][level]").unwrap(),
            "boss".into(),
        );
        assert_eq!(
            event,
            json!({"release": "1.2.3", "user": {"id": "42"}, "tags": {"level": "boss"}})
        );
        assert!(sentry_path("release").is_none());
    }
}
