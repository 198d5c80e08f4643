//! Reading an upload of debug files from a request, for every front end that takes one (the
//! API's upload routes, the web UI's upload form): the body, raw or multipart, spooled to a
//! fresh scratch folder within `limits.max_upload_bytes`, as the upload service's [`Upload`].

use axum::extract::{Multipart, Request};
use axum::http::StatusCode;

use super::body::{next_part, spool, BodyLimit, UploadBody};
use super::error::HttpError;
use crate::app::App;
use crate::uploads::{ReceivedFile, Upload};

/// Spools the request's files to a new scratch folder (deleted when the returned handle is
/// dropped). A raw body is one file named `raw_name`; a multipart body's file parts are the
/// files, and its parts without a file name are form fields.
pub async fn read_upload(
    app: &App,
    request: Request,
    raw_name: &str,
) -> Result<(tempfile::TempDir, Upload), HttpError> {
    let mut limit = BodyLimit::new(
        app.config.limits.max_upload_bytes,
        "limits.max_upload_bytes (FAULTLINE_LIMITS_MAX_UPLOAD_BYTES)",
    );
    let body = UploadBody::from_request(request, app, &limit).await?;
    let scratch = app.symbols.scratch_dir().map_err(|e| {
        HttpError::internal(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot create scratch space for the upload",
            e,
        )
    })?;
    let upload = match body {
        UploadBody::Multipart(multipart) => {
            read_multipart_files(multipart, scratch.path(), &mut limit).await?
        }
        UploadBody::Raw(body) => {
            let path = scratch.path().join("body");
            spool(body.into_data_stream(), &path, &mut limit).await?;
            Upload {
                files: vec![ReceivedFile {
                    name: raw_name.to_owned(),
                    path,
                }],
                form_fields: Vec::new(),
            }
        }
    };
    Ok((scratch, upload))
}

/// Spools every file part under `scratch`; a body without file parts is a 400.
async fn read_multipart_files(
    mut multipart: Multipart,
    scratch: &std::path::Path,
    limit: &mut BodyLimit,
) -> Result<Upload, HttpError> {
    let mut upload = Upload::default();
    while let Some(field) = next_part(&mut multipart).await? {
        let Some(name) = field.file_name().map(str::to_owned) else {
            upload
                .form_fields
                .push(field.name().unwrap_or_default().to_owned());
            continue;
        };
        let path = scratch.join(format!("part-{}", upload.files.len()));
        spool(field, &path, limit).await?;
        upload.files.push(ReceivedFile { name, path });
    }
    if upload.files.is_empty() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "the multipart body has no file parts",
        )
        .with_detail("send each debug file as a part with a filename"));
    }
    Ok(upload)
}
