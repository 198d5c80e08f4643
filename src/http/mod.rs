//! What the two front ends (`api/` and `ui/`) share about HTTP, and nothing about crashes: who
//! is calling ([`Caller`], from a bearer token), the error a request ends with ([`HttpError`]),
//! bounded reading of request bodies (size limits, spooling to scratch files, multipart framing,
//! the stalled-body guard, an upload's files, `Connection: close` after a body left unread),
//! JSON answers of hot routes written with sonic-rs, paths with and without a trailing slash, and URL path segments. It imports no front end.

mod body;
mod caller;
mod error;
mod json;
mod multipart;
mod paths;
mod unread;
mod upload;

pub use body::{
    is_body_timeout, next_part, read_limited, read_spilling, scratch_failed, spool, typed_json,
    BodyLimit, Spill, StallGuard, UploadBody,
};
pub use caller::{presented_token, project_param, Caller};
pub use error::{bad_request, HttpError, RequestId};
pub use json::fast_json;
pub use multipart::{FramingError, FramingGuard, MAX_FRAMING_BYTES};
pub use paths::{route_with_and_without_slash, segment, server_origin};
pub use unread::close_if_body_unread;
pub use upload::read_upload;
