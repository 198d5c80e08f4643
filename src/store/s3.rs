//! The S3 backend (aws-sdk-s3): one object per key under an optional key prefix in one bucket.
//! Works with AWS and self-hosted S3 servers (path-style addressing). Large files go up as
//! multipart uploads, never buffered whole beyond one part; an upload that fails part-way is
//! aborted, so nothing half-written is left. The SDK retries with backoff; when S3 stays
//! unreachable the caller gets a `Backend` error (ingest answers 503).

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use tokio::io::AsyncReadExt;

use crate::config::S3Config;

use super::{error_chain, ObjectInfo, ObjectKey, ObjectReader, ObjectStore, PutBody, StoreError};

/// Objects in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_bytes: u64,
}

fn failed(op: &'static str, key: impl ToString) -> impl FnOnce(String) -> StoreError {
    let key = key.to_string();
    move |message| StoreError::Backend {
        op,
        key,
        source: io::Error::other(message),
    }
}

impl S3Store {
    /// Connects (lazily: the first request opens the connection).
    pub async fn connect(config: &S3Config) -> Result<S3Store, String> {
        if config.bucket.is_empty() {
            return Err("storage.s3.bucket is not set".to_owned());
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(config.timeout_secs))
                    .build(),
            );
        if !config.region.is_empty() {
            loader = loader.region(Region::new(config.region.clone()));
        } else if !config.endpoint.is_empty() {
            loader = loader.region(Region::new("us-east-1"));
        }
        if !config.endpoint.is_empty() {
            loader = loader.endpoint_url(&config.endpoint);
        }
        if !config.access_key.is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                &config.access_key,
                &config.secret_key,
                None,
                None,
                "faultline-config",
            ));
        }
        let shared = loader.load().await;
        // Checksums only where S3 requires them: self-hosted servers differ in how they keep
        // optional checksums (s3s-fs stores them under a file name built from the whole key,
        // which long keys overflow).
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build();
        let prefix = config.prefix.trim_matches('/');
        Ok(S3Store {
            client: Client::from_conf(s3),
            bucket: config.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_bytes: config.multipart_part_bytes.max(5 << 20),
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Abandons a multipart upload so no part of it is left behind (best effort).
    async fn abort_upload(&self, full: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await;
    }

    async fn put_multipart(
        &self,
        key: &ObjectKey,
        path: &std::path::Path,
    ) -> Result<(), StoreError> {
        let full = self.full(key.as_str());
        let fail = |m: String| failed("put", key)(m);
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result: Result<Vec<CompletedPart>, StoreError> = async {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut part = Vec::with_capacity(self.part_bytes as usize);
                (&mut file)
                    .take(self.part_bytes)
                    .read_to_end(&mut part)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if part.is_empty() && number > 1 {
                    break;
                }
                let last = (part.len() as u64) < self.part_bytes;
                let sent = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| fail(error_chain(&e)))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(sent.e_tag().map(str::to_owned))
                        .build(),
                );
                number += 1;
                if last {
                    break;
                }
            }
            Ok(parts)
        }
        .await;
        let parts = match result {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_upload(&full, &upload_id).await;
                return Err(e);
            }
        };
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = completed {
            self.abort_upload(&full, &upload_id).await;
            return Err(fail(error_chain(&e)));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &ObjectKey, body: PutBody) -> Result<(), StoreError> {
        let stream = match body {
            PutBody::Bytes(bytes) => ByteStream::from(bytes),
            PutBody::File(path) => {
                let size = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| failed("put", key)(e.to_string()))?
                    .len();
                if size > self.part_bytes {
                    return self.put_multipart(key, &path).await;
                }
                ByteStream::from_path(&path)
                    .await
                    .map_err(|e| failed("put", key)(error_chain(&e)))?
            }
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .body(stream)
            .send()
            .await
            .map_err(|e| failed("put", key)(error_chain(&e)))?;
        Ok(())
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(ObjectReader {
                size: output.content_length().unwrap_or(0).max(0) as u64,
                body: Box::pin(output.body.into_async_read()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(failed("get", key)(error_chain(&e))),
        }
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(ObjectInfo {
                key: key.clone(),
                size: output.content_length().unwrap_or(0).max(0) as u64,
                modified: output
                    .last_modified()
                    .and_then(|t| u64::try_from(t.secs()).ok()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(failed("head", key)(error_chain(&e))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| failed("list", prefix)(error_chain(&e)))?;
            for object in page.contents() {
                let Some(full) = object.key() else { continue };
                let Some(key) = full.strip_prefix(&self.prefix) else {
                    continue;
                };
                if let Ok(key) = ObjectKey::new(key.to_owned()) {
                    out.push(ObjectInfo {
                        key,
                        size: object.size().unwrap_or(0).max(0) as u64,
                        modified: object
                            .last_modified()
                            .and_then(|t| u64::try_from(t.secs()).ok()),
                    });
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key.as_str()))
            .send()
            .await
            .map_err(|e| failed("delete", key)(error_chain(&e)))?;
        Ok(())
    }
}
