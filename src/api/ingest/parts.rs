//! What a crash body holds: the body spooled to disk (gzip decoded, multipart framing checked),
//! multipart parts (dumps, attachments, annotations, Sentry's event fields), compressed dump
//! parts, and Unreal crash containers.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::body::Body;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::io::{ReaderStream, StreamReader};

use super::{unavailable, Client, Refusal};
use crate::api::body::is_body_timeout;
use crate::api::multipart::FramingGuard;
use crate::api::AppState;
use crate::ingest::{RawCrashBuilder, MAIN_DUMP};

/// Files received with a crash, spooled locally: (dump field, path) and (attachment name, path).
type ReceivedFiles = (Vec<(String, PathBuf)>, Vec<(String, PathBuf)>);

/// Writes `body` (gzip-decoded if `gzip`) to `path` within the byte caps; a multipart body's
/// framing is checked on the way (`guard`), so a body without its boundary fails within the
/// first few kilobytes instead of being stored whole.
pub(super) async fn spool_body(
    state: &AppState,
    body: Body,
    gzip: bool,
    mut guard: Option<FramingGuard>,
    path: &Path,
) -> Result<(), Refusal> {
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
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = if gzip {
        Box::pin(async_compression::tokio::bufread::GzipDecoder::new(
            tokio::io::BufReader::new(reader),
        ))
    } else {
        Box::pin(reader)
    };
    let mut file = tokio::fs::File::create(path).await.map_err(unavailable)?;
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
            Err(_) if gzip => return Err(Refusal::Malformed("bad_gzip")),
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
        file.write_all(&buf[..n]).await.map_err(unavailable)?;
    }
    file.flush().await.map_err(unavailable)
}

/// If `path` holds a gzip, zstd, bzip2 or xz stream (a Sentry SDK may compress the dump part),
/// decompresses it in place within `limit` bytes.
pub(super) async fn decompress_part(path: &Path, limit: u64) -> Result<(), Refusal> {
    let mut magic = [0u8; 6];
    let n = {
        let mut f = tokio::fs::File::open(path).await.map_err(unavailable)?;
        f.read(&mut magic).await.map_err(unavailable)?
    };
    let magic = &magic[..n];
    let file = tokio::io::BufReader::new(tokio::fs::File::open(path).await.map_err(unavailable)?);
    use async_compression::tokio::bufread as dec;
    let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> =
        if magic.starts_with(&[0x1f, 0x8b]) {
            Box::pin(dec::GzipDecoder::new(file))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::pin(dec::ZstdDecoder::new(file))
        } else if magic.starts_with(b"BZh") {
            Box::pin(dec::BzDecoder::new(file))
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Box::pin(dec::XzDecoder::new(file))
        } else {
            return Ok(());
        };
    let out_path = path.with_extension("decompressed");
    let mut out = tokio::fs::File::create(&out_path)
        .await
        .map_err(unavailable)?;
    let copied = tokio::io::copy(&mut (&mut reader).take(limit + 1), &mut out)
        .await
        .map_err(|_| Refusal::Malformed("bad_compression"))?;
    if copied > limit {
        return Err(Refusal::TooLarge(format!(
            "the dump expands past ingest.max_decompressed_bytes ({limit})"
        )));
    }
    out.flush().await.map_err(unavailable)?;
    tokio::fs::rename(&out_path, path)
        .await
        .map_err(unavailable)
}

pub(super) async fn is_minidump(path: &Path) -> Result<bool, Refusal> {
    let mut magic = [0u8; 4];
    let mut f = tokio::fs::File::open(path).await.map_err(unavailable)?;
    let n = f.read(&mut magic).await.map_err(unavailable)?;
    Ok(n == 4 && &magic == b"MDMP")
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

/// Most bytes before a multipart body's first part (the framing guard allows a preamble of
/// 16 KiB), read before the body is handed to multer.
const FIRST_CHUNK: usize = 64 * 1024;

/// The body in `reader` as a stream whose first item holds its first [`FIRST_CHUNK`] bytes.
///
/// multer looks for the first boundary, polls the stream once more when it is not there yet,
/// and if that poll reaches the end of the stream it fails with "incomplete multipart stream"
/// without looking again, though the boundary may have arrived with that very poll. A file
/// read in tokio's blocking pool hits that (about one body in 4,000 under load); a first
/// chunk that already holds the boundary never does.
async fn with_first_boundary<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut reader: R,
) -> std::io::Result<impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send> {
    let mut head = vec![0u8; FIRST_CHUNK];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    let first = futures::stream::once(async move { Ok(bytes::Bytes::from(head)) });
    Ok(first.chain(ReaderStream::new(reader)))
}

/// Reads a multipart body from `body_path` into `builder`, spooling files into `scratch`.
/// Returns the parts holding minidumps and other files.
pub(super) async fn read_multipart(
    client: Client,
    max_field: u64,
    boundary: String,
    body_path: &Path,
    scratch: &Path,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    let file = tokio::fs::File::open(body_path)
        .await
        .map_err(unavailable)?;
    let stream = with_first_boundary(file).await.map_err(unavailable)?;
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut dumps = Vec::new();
    let mut files = Vec::new();
    let mut sentry_fields = json!({});
    let mut n = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(Refusal::Malformed("invalid_payload_structure")),
        };
        n += 1;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let is_json = field
            .content_type()
            .is_some_and(|m| m.essence_str() == "application/json");
        // Files (dumps, attachments, Sentry's event) go to scratch files; text fields (a
        // Crashpad upload has dozens) stay in memory, within ingest.max_field_bytes.
        let keep_as_file = name.starts_with(MAIN_DUMP)
            || file_name.is_some()
            || (client == Client::Sentry && name == "sentry");
        let path = scratch.join(format!("part-{n}"));
        let mut text_bytes = Vec::new();
        let mut out = if keep_as_file {
            Some(std::fs::File::create(&path).map_err(unavailable)?)
        } else {
            None
        };
        let mut field = field;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => match &mut out {
                    Some(out) => out.write_all(&chunk).map_err(unavailable)?,
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
        if let Some(mut out) = out {
            out.flush().map_err(unavailable)?;
        }
        let small_text = || -> Result<String, Refusal> {
            if !keep_as_file {
                return Ok(String::from_utf8_lossy(&text_bytes).into_owned());
            }
            let len = std::fs::metadata(&path).map_err(unavailable)?.len();
            if len > max_field {
                return Err(Refusal::TooLarge(format!(
                    "the text part {name:?} is larger than ingest.max_field_bytes ({max_field})"
                )));
            }
            let bytes = std::fs::read(&path).map_err(unavailable)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        if name.starts_with(MAIN_DUMP) {
            dumps.push((name, path));
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
            files.push(("sentry.json".to_owned(), path));
        } else if let (Client::Sentry, Some(keys)) = (client, sentry_path(&name)) {
            insert_path(&mut sentry_fields, &keys, small_text()?);
        } else if file_name.is_some() {
            files.push((file_name.filter(|f| !f.is_empty()).unwrap_or(name), path));
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
    body_path: &Path,
    scratch: &Path,
    builder: &mut RawCrashBuilder,
) -> Result<ReceivedFiles, Refusal> {
    use symbolic::unreal::{Unreal4Crash, Unreal4FileType};
    let file = std::fs::File::open(body_path).map_err(unavailable)?;
    if file.metadata().map_err(unavailable)?.len() == 0 {
        return Err(Refusal::Malformed("invalid_unreal_crash"));
    }
    // Mapped, not read: the container can be as large as ingest.max_decompressed_bytes.
    // SAFETY: the spooled body is private to this request and not written while mapped.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unavailable)?;
    let crash =
        Unreal4Crash::parse(&bytes).map_err(|_| Refusal::Malformed("invalid_unreal_crash"))?;
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
    for (i, file) in crash.files().enumerate() {
        let path = scratch.join(format!("unreal-{i}"));
        std::fs::write(&path, file.data()).map_err(unavailable)?;
        if file.ty() == Unreal4FileType::Minidump && dumps.is_empty() {
            dumps.push((MAIN_DUMP.to_owned(), path));
        } else {
            files.push((file.name().to_owned(), path));
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

#[cfg(test)]
mod late_body_tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A reader that is not ready at first, then gives everything at once: the order of events
    /// that made multer give up on a complete body.
    struct LateReader {
        body: Vec<u8>,
        polled: bool,
    }

    impl tokio::io::AsyncRead for LateReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if !self.polled {
                self.polled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.remaining().min(self.body.len());
            let rest = self.body.split_off(n);
            buf.put_slice(&self.body);
            self.body = rest;
            Poll::Ready(Ok(()))
        }
    }

    async fn fields(
        stream: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    ) -> Result<usize, multer::Error> {
        let mut multipart = multer::Multipart::new(stream, "B");
        let mut n = 0;
        while let Some(field) = multipart.next_field().await? {
            field.bytes().await?;
            n += 1;
        }
        Ok(n)
    }

    #[tokio::test]
    async fn a_body_that_arrives_late_and_all_at_once_is_read_whole() {
        let body =
            b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n--B--\r\n".to_vec();
        let late = || LateReader {
            body: body.clone(),
            polled: false,
        };
        // What multer alone does with it (the reason for `with_first_boundary`).
        let plain = fields(ReaderStream::with_capacity(late(), 1 << 16)).await;
        assert!(plain.is_err(), "{plain:?}");
        let stream = with_first_boundary(late()).await.unwrap();
        assert_eq!(fields(stream).await.unwrap(), 1);
    }
}
