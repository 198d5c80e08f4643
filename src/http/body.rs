//! Request bodies for upload routes: a size limit enforced while reading (413 naming the
//! setting that raises it), multipart or raw, held in memory (dumps, JSON) or spooled to a
//! local file (debug files, which can be gigabytes).

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::error::HttpError;
use super::multipart::FramingGuard;
use crate::app::App;

/// A byte budget for one request body, and the setting that raises it.
#[derive(Clone, Copy)]
pub struct BodyLimit {
    /// Bytes still allowed.
    remaining: u64,
    limit: u64,
    setting: &'static str,
}

impl BodyLimit {
    /// `limit` bytes, raised by `setting` (named in the 413's detail).
    pub fn new(limit: u64, setting: &'static str) -> BodyLimit {
        BodyLimit {
            remaining: limit,
            limit,
            setting,
        }
    }

    fn too_large(&self) -> HttpError {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload is larger than the {}-byte limit", self.limit),
        )
        .with_detail(format!("send less, or raise {}", self.setting))
    }

    /// Counts `n` more bytes against the budget (413 past it).
    pub fn take(&mut self, n: usize) -> Result<(), HttpError> {
        if n as u64 > self.remaining {
            return Err(self.too_large());
        }
        self.remaining -= n as u64;
        Ok(())
    }
}

/// A body as an upload route receives it.
pub enum UploadBody {
    /// `multipart/*`: parts, read one by one with [`next_part`].
    Multipart(Multipart),
    /// Anything else: the body itself.
    Raw(Body),
}

impl UploadBody {
    /// Refuses a declared `Content-Length` over the limit at once (413), then tells multipart
    /// bodies from raw ones.
    pub async fn from_request(
        request: Request,
        state: &App,
        limit: &BodyLimit,
    ) -> Result<UploadBody, HttpError> {
        let headers = request.headers();
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        // Multipart framing adds a little to the payload the limit is about.
        if declared.is_some_and(|len| len > limit.limit.saturating_add(64 << 10)) {
            return Err(limit.too_large());
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("multipart/") {
            return Ok(UploadBody::Raw(request.into_body()));
        }
        let boundary =
            multer::parse_boundary(content_type).map_err(|e| malformed_multipart(e.to_string()))?;
        let mut guard =
            FramingGuard::new(&boundary).map_err(|e| malformed_multipart(e.to_string()))?;
        let request = request.map(|body| {
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let chunk = chunk.map_err(axum::BoxError::from)?;
                guard.check(&chunk)?;
                Ok::<_, axum::BoxError>(chunk)
            }))
        });
        Multipart::from_request(request, state)
            .await
            .map(UploadBody::Multipart)
            .map_err(|e| malformed_multipart(e.body_text()))
    }
}

fn malformed_multipart(detail: String) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "malformed multipart body").with_detail(detail)
}

/// The next part of a multipart body, or `None` after the last.
pub async fn next_part(multipart: &mut Multipart) -> Result<Option<Field<'_>>, HttpError> {
    multipart.next_field().await.map_err(|e| {
        if is_body_timeout(&e) {
            unreadable(e)
        } else {
            malformed_multipart(e.body_text())
        }
    })
}

/// A request body that fails with [`BodyStalled`] when it sends nothing for its timeout. The
/// timer is armed only while the body is waiting for the client (a body already received never
/// touches it) and reset, not recreated, so a fast request costs nothing.
pub struct StallGuard {
    inner: Body,
    timeout: std::time::Duration,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

/// The client stopped sending its body (`server.body_timeout_secs`).
#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
pub struct BodyStalled;

impl StallGuard {
    /// Guards `inner` with `timeout`.
    pub fn new(inner: Body, timeout: std::time::Duration) -> StallGuard {
        StallGuard {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }
}

impl http_body::Body for StallGuard {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::BoxError>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyStalled.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body read failed because the client stopped sending (`server.body_timeout_secs`).
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<BodyStalled>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn unreadable(e: impl std::error::Error + 'static) -> HttpError {
    if is_body_timeout(&e) {
        return HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body stopped arriving",
        )
        .with_detail(
            "the client sent nothing for server.body_timeout_secs; send the body without pauses",
        );
    }
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "the request body could not be read",
    )
    .with_detail(e.to_string())
}

/// Reads a stream of chunks into memory within `limit`.
pub async fn read_limited<S, E>(mut chunks: S, limit: &mut BodyLimit) -> Result<Bytes, HttpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        limit.take(chunk.len())?;
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// 503: the scratch disk failed (full, or not writable); the reason goes to the log.
pub fn scratch_failed(e: std::io::Error) -> HttpError {
    HttpError::internal(
        StatusCode::SERVICE_UNAVAILABLE,
        "cannot spool the upload to local disk",
        e,
    )
}

/// Writes a stream of chunks to a new file at `path` within `limit`.
pub async fn spool<S, E>(mut chunks: S, path: &Path, limit: &mut BodyLimit) -> Result<(), HttpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(scratch_failed)?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        limit.take(chunk.len())?;
        file.write_all(&chunk).await.map_err(scratch_failed)?;
    }
    file.flush().await.map_err(scratch_failed)
}

/// Bodies (and parts) up to this size are held in memory; larger ones go to an unnamed scratch
/// file that is then memory-mapped (creating a file costs more than a small dump's whole
/// processing, so a typical crash never touches the scratch disk).
pub const IN_MEMORY_BYTES: usize = 4 << 20;

/// Chunks at least this large are kept as they came; smaller ones are copied together.
const KEPT_CHUNK_BYTES: usize = 16 << 10;

/// Bytes being received: in memory up to [`IN_MEMORY_BYTES`], past that in an unnamed file
/// under the scratch folder (created only then, gone when its last mapping is), so a request
/// holds at most a few megabytes of its own however large the body.
pub struct Spill {
    /// The chunks received while the body fits in memory, as they came (joined once, at the
    /// end, into a buffer of the right size: no copying as a buffer grows); small ones are
    /// gathered in `small` first, so a body sent a byte at a time is not a million chunks.
    memory: Vec<Bytes>,
    small: bytes::BytesMut,
    in_memory: usize,
    file: Option<tokio::fs::File>,
    len: u64,
    scratch: PathBuf,
}

impl Spill {
    /// Nothing received yet; `scratch` is where a large body spills.
    pub fn new(scratch: &Path) -> Spill {
        Spill {
            memory: Vec::new(),
            small: bytes::BytesMut::new(),
            in_memory: 0,
            file: None,
            len: 0,
            scratch: scratch.to_owned(),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.len
    }

    /// Appends a copy of `chunk`, spilling to disk when memory would pass [`IN_MEMORY_BYTES`].
    pub async fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() && self.in_memory + chunk.len() <= IN_MEMORY_BYTES {
            return self.push_bytes(Bytes::copy_from_slice(chunk)).await;
        }
        self.len += chunk.len() as u64;
        self.spilled().await?.write_all(chunk).await
    }

    /// Appends `chunk` (kept as it is while the body fits in memory), spilling to disk when
    /// memory would pass [`IN_MEMORY_BYTES`].
    pub async fn push_bytes(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        if self.file.is_none() && self.in_memory + chunk.len() <= IN_MEMORY_BYTES {
            self.in_memory += chunk.len();
            if chunk.len() < KEPT_CHUNK_BYTES {
                self.small.extend_from_slice(&chunk);
            } else {
                self.gather_small();
                self.memory.push(chunk);
            }
            return Ok(());
        }
        self.spilled().await?.write_all(&chunk).await
    }

    /// The small chunks gathered so far, as one chunk after the others.
    fn gather_small(&mut self) {
        if !self.small.is_empty() {
            self.memory.push(self.small.split().freeze());
        }
    }

    /// The scratch file, created (with what memory held) on first need.
    async fn spilled(&mut self) -> std::io::Result<&mut tokio::fs::File> {
        if self.file.is_none() {
            self.gather_small();
            let mut file = tokio::fs::File::from_std(tempfile::tempfile_in(&self.scratch)?);
            for chunk in std::mem::take(&mut self.memory) {
                file.write_all(&chunk).await?;
            }
            self.in_memory = 0;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just created"))
    }

    /// Everything received, as one buffer (a mapping of the scratch file when it spilled).
    pub async fn finish(mut self) -> std::io::Result<Bytes> {
        self.gather_small();
        let Some(mut file) = self.file else {
            return Ok(match self.memory.len() {
                0 => Bytes::new(),
                1 => self.memory.pop().expect("one chunk"),
                _ => {
                    let mut joined = bytes::BytesMut::with_capacity(self.in_memory);
                    for chunk in &self.memory {
                        joined.extend_from_slice(chunk);
                    }
                    joined.freeze()
                }
            });
        };
        file.flush().await?;
        let file = file.into_std().await;
        // SAFETY: the file has no name (nothing else can open it) and is not written again.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        Ok(Bytes::from_owner(map))
    }
}

/// Reads a stream of chunks within `limit` into a [`Spill`] under `scratch`.
pub async fn read_spilling<S, E>(
    mut chunks: S,
    limit: &mut BodyLimit,
    scratch: &Path,
) -> Result<Bytes, HttpError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut spill = Spill::new(scratch);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreadable)?;
        limit.take(chunk.len())?;
        spill.push_bytes(chunk).await.map_err(scratch_failed)?;
    }
    spill.finish().await.map_err(scratch_failed)
}

/// A JSON request body read as `T`, after the caller was let in: 400 saying what is wrong and
/// showing `example` (never axum's plain-text 422).
pub fn typed_json<T: serde::de::DeserializeOwned>(
    body: Result<axum::Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
    example: &str,
) -> Result<T, HttpError> {
    let bad = |message: String| {
        HttpError::new(axum::http::StatusCode::BAD_REQUEST, message).with_detail(example.to_owned())
    };
    match body {
        Ok(axum::Json(value)) => {
            serde_json::from_value(value).map_err(|e| bad(format!("invalid request: {e}")))
        }
        Err(e) => Err(bad(format!("invalid request: {}", e.body_text()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of every size, in memory and past it: the body comes back byte for byte.
    #[tokio::test]
    async fn a_spilled_or_kept_body_is_what_was_sent() {
        let scratch = tempfile::tempdir().unwrap();
        let sizes = [1, 3, KEPT_CHUNK_BYTES, 7, KEPT_CHUNK_BYTES * 3, 1, 1, 100];
        let mut sent = Vec::new();
        let mut spill = Spill::new(scratch.path());
        for (i, size) in sizes.into_iter().enumerate() {
            let chunk: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
            sent.extend_from_slice(&chunk);
            if i % 2 == 0 {
                spill.push(&chunk).await.unwrap();
            } else {
                spill.push_bytes(chunk.into()).await.unwrap();
            }
        }
        assert!(spill.memory.len() <= 5, "small chunks gathered");
        assert_eq!(spill.finish().await.unwrap(), sent);

        // A body sent a byte at a time, then past the memory limit.
        let mut spill = Spill::new(scratch.path());
        let mut sent = Vec::new();
        for i in 0..100_000u32 {
            spill.push_bytes(Bytes::from(vec![i as u8])).await.unwrap();
            sent.push(i as u8);
        }
        assert!(spill.memory.len() <= 1, "{} chunks", spill.memory.len());
        let big = vec![9u8; IN_MEMORY_BYTES];
        spill.push_bytes(Bytes::from(big.clone())).await.unwrap();
        sent.extend_from_slice(&big);
        assert!(spill.file.is_some(), "spilled to the scratch folder");
        assert_eq!(spill.received(), sent.len() as u64);
        assert_eq!(spill.finish().await.unwrap(), sent);
    }
}
