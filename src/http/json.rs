//! JSON answers of the routes on a hot path (raw-frame symbolication), written with sonic-rs:
//! the same JSON as axum's `Json` from the same `Serialize` impls, but escaping strings with
//! SIMD into one buffer instead of serde_json's byte-at-a-time writes into a `BytesMut` (over a
//! fifth of a 100-frame symbolication's server time; docs/PERFORMANCE.md).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A `200` answer with `value` as JSON; `size_hint` is the bytes expected (the buffer's first
/// size, so a large answer is not copied as it grows).
pub fn fast_json<T: Serialize>(value: &T, size_hint: usize) -> Response {
    let mut out = Vec::with_capacity(size_hint);
    match sonic_rs::to_writer(&mut out, value) {
        Ok(()) => ([(CONTENT_TYPE, "application/json")], out).into_response(),
        // Only a map with non-string keys or a failing `Serialize` impl ends here: ours have
        // neither, and the caller gets a 500 with nothing internal, as for any bug of ours.
        Err(e) => super::HttpError::internal(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be written",
            format_args!("answer not serializable: {e}"),
        )
        .into_response(),
    }
}
