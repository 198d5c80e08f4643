//! Reaching a source: an HTTP(S) server (also debuginfod's), an S3 bucket or a folder, asked
//! for one path at a time. Every answer is streamed to a scratch file under a byte cap and time
//! limits, so a hostile or broken server costs at most `max_download_bytes` of disk and its
//! timeouts, never memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{S3Config, SourceConfig, SourceKind};
use crate::store::{error_chain, FsStore, ObjectKey, ObjectStore, S3Store};

/// How a source is asked for a file.
pub enum Transport {
    /// HTTP(S): the base URL, a client with the source's connect timeout and redirect limit,
    /// and its extra headers.
    Http {
        base: reqwest::Url,
        client: reqwest::Client,
        headers: reqwest::header::HeaderMap,
    },
    /// An S3 bucket or a folder, read as an object store.
    Objects {
        store: Arc<dyn ObjectStore>,
        /// `s3://bucket/prefix/` or the folder, for candidates.
        root: String,
    },
}

/// Why a download gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadError {
    /// The source answered that it has no such file.
    NotFound,
    /// The source failed (server error, timeout, refused connection); worth asking again later.
    Failed(String),
    /// The answer was larger than `max_download_bytes`.
    TooLarge(u64),
    /// The path cannot be asked of this source (a name an object key cannot hold).
    Unaddressable,
}

/// The caps on one download.
#[derive(Debug, Clone, Copy)]
pub struct DownloadLimits {
    /// Largest answer kept.
    pub max_bytes: u64,
    /// From request to headers.
    pub first_byte: Duration,
    /// The whole download.
    pub total: Duration,
}

/// Most redirects followed for one file (a loop ends here with an error).
const MAX_REDIRECTS: usize = 5;

impl Transport {
    /// The transport `config` (a resolved source) describes.
    pub async fn open(config: &SourceConfig) -> Result<Transport, String> {
        let url = config.url.clone().unwrap_or_default();
        match config.kind {
            Some(SourceKind::Http) | Some(SourceKind::Debuginfod) => {
                let mut base = reqwest::Url::parse(&url)
                    .map_err(|e| format!("symbols source {:?}: url {url:?}: {e}", config.id))?;
                if !base.path().ends_with('/') {
                    base.set_path(&format!("{}/", base.path()));
                }
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in &config.headers {
                    let name =
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                            format!("symbols source {:?}: header {name:?}: {e}", config.id)
                        })?;
                    let mut value =
                        reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                            format!(
                                "symbols source {:?}: header {name} has an invalid value",
                                config.id
                            )
                        })?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_millis(config.timeouts.connect_ms))
                    .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
                    .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("symbols source {:?}: {e}", config.id))?;
                Ok(Transport::Http {
                    base,
                    client,
                    headers,
                })
            }
            Some(SourceKind::Filesystem) => {
                let store = FsStore::open(&url)
                    .map_err(|e| format!("symbols source {:?}: folder {url:?}: {e}", config.id))?;
                Ok(Transport::Objects {
                    store: Arc::new(store),
                    root: url,
                })
            }
            Some(SourceKind::S3) => {
                let s3 = S3Config {
                    bucket: config.bucket.clone(),
                    prefix: config.prefix.clone(),
                    endpoint: config.endpoint.clone(),
                    region: config.region.clone(),
                    access_key: config.access_key.clone(),
                    secret_key: config.secret_key.clone(),
                    max_attempts: 1,
                    timeout_secs: config.timeouts.total_ms.div_ceil(1000).max(1),
                    ..S3Config::default()
                };
                let store = S3Store::connect(&s3)
                    .await
                    .map_err(|e| format!("symbols source {:?}: {e}", config.id))?;
                let prefix = config.prefix.trim_matches('/');
                Ok(Transport::Objects {
                    store: Arc::new(store),
                    root: format!(
                        "s3://{}/{prefix}{}",
                        config.bucket,
                        if prefix.is_empty() { "" } else { "/" }
                    ),
                })
            }
            None => Err(format!("symbols source {:?}: `type` is not set", config.id)),
        }
    }

    /// Where `path` is on this source, as candidates show it (never with credentials).
    pub fn location(&self, path: &str) -> String {
        match self {
            Transport::Http { base, .. } => match url_for(base, path) {
                Some(mut url) => {
                    let _ = url.set_password(None);
                    let _ = url.set_username("");
                    url.to_string()
                }
                None => format!("{base}{path}"),
            },
            Transport::Objects { root, .. } => {
                let separator = if root.ends_with('/') { "" } else { "/" };
                format!("{root}{separator}{path}")
            }
        }
    }

    /// Downloads `path` into a new scratch file under `scratch`.
    pub async fn download(
        &self,
        path: &str,
        scratch: &Path,
        limits: DownloadLimits,
    ) -> Result<tempfile::NamedTempFile, DownloadError> {
        let work = self.download_inner(path, scratch, limits);
        match tokio::time::timeout(limits.total, work).await {
            Ok(result) => result,
            Err(_) => Err(DownloadError::Failed(format!(
                "timed out after {} ms (timeouts.total_ms)",
                limits.total.as_millis()
            ))),
        }
    }

    async fn download_inner(
        &self,
        path: &str,
        scratch: &Path,
        limits: DownloadLimits,
    ) -> Result<tempfile::NamedTempFile, DownloadError> {
        let local = tempfile::NamedTempFile::new_in(scratch)
            .map_err(|e| DownloadError::Failed(format!("scratch space: {e}")))?;
        let mut out = tokio::fs::File::from_std(
            local
                .reopen()
                .map_err(|e| DownloadError::Failed(format!("scratch space: {e}")))?,
        );
        match self {
            Transport::Http {
                base,
                client,
                headers,
            } => {
                let url = url_for(base, path).ok_or(DownloadError::Unaddressable)?;
                let request = client.get(url).headers(headers.clone()).send();
                let mut response = match tokio::time::timeout(limits.first_byte, request).await {
                    Err(_) => {
                        return Err(DownloadError::Failed(format!(
                            "no answer within {} ms (timeouts.first_byte_ms)",
                            limits.first_byte.as_millis()
                        )))
                    }
                    Ok(Err(e)) => return Err(DownloadError::Failed(describe(&e))),
                    Ok(Ok(response)) => response,
                };
                let status = response.status();
                match status.as_u16() {
                    200..=299 => {}
                    404 | 410 => return Err(DownloadError::NotFound),
                    401 | 403 => {
                        return Err(DownloadError::Failed(format!(
                            "access denied (HTTP {status}): check the source's headers"
                        )))
                    }
                    _ => return Err(DownloadError::Failed(format!("HTTP {status}"))),
                }
                if let Some(length) = response.content_length().filter(|l| *l > limits.max_bytes) {
                    return Err(DownloadError::TooLarge(length));
                }
                let mut written = 0u64;
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| DownloadError::Failed(describe(&e)))?
                {
                    written += chunk.len() as u64;
                    if written > limits.max_bytes {
                        return Err(DownloadError::TooLarge(written));
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| DownloadError::Failed(format!("scratch space: {e}")))?;
                }
            }
            Transport::Objects { store, .. } => {
                let key = ObjectKey::new(path).map_err(|_| DownloadError::Unaddressable)?;
                let reader = match store.get(&key).await {
                    Ok(Some(reader)) => reader,
                    Ok(None) => return Err(DownloadError::NotFound),
                    Err(e) => return Err(DownloadError::Failed(e.to_string())),
                };
                if reader.size > limits.max_bytes {
                    return Err(DownloadError::TooLarge(reader.size));
                }
                let copied = tokio::io::copy(&mut reader.body.take(limits.max_bytes + 1), &mut out)
                    .await
                    .map_err(|e| DownloadError::Failed(e.to_string()))?;
                if copied > limits.max_bytes {
                    return Err(DownloadError::TooLarge(copied));
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| DownloadError::Failed(format!("scratch space: {e}")))?;
        Ok(local)
    }
}

/// `base` joined with `path`, each segment percent-encoded.
fn url_for(base: &reqwest::Url, path: &str) -> Option<reqwest::Url> {
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().ok()?;
        segments.pop_if_empty();
        for segment in path.split('/') {
            segments.push(segment);
        }
    }
    Some(url)
}

/// An HTTP error with its causes (`error sending request: connection refused`).
fn describe(e: &reqwest::Error) -> String {
    if e.is_redirect() {
        return format!("more than {MAX_REDIRECTS} redirects (a redirect loop?)");
    }
    error_chain(e)
}
