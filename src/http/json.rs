//! JSON answers of the routes on a hot path (raw-frame symbolication), written with sonic-rs:
//! the same JSON as axum's `Json` from the same `Serialize` impls, but escaping strings with
//! SIMD into one buffer instead of serde_json's byte-at-a-time writes into a `BytesMut` (over a
//! sixth of a 100-frame symbolication's server time; docs/PERFORMANCE.md).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The most a size hint reserves up front: a hint comes from the request (its frame count),
/// and a large request must not buy memory before its answer needs it.
const MAX_RESERVED: usize = 1 << 20;

/// A `200` answer with `value` as JSON; `size_hint` is the bytes expected (the buffer's first
/// size, up to 1 MiB, so a usual answer is not copied as it grows).
pub fn fast_json<T: Serialize>(value: &T, size_hint: usize) -> Response {
    let mut out = Vec::with_capacity(size_hint.min(MAX_RESERVED));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_json_serde_json_would_write() {
        #[derive(Serialize)]
        struct Inner {
            text: &'static str,
            n: Option<u64>,
        }
        #[derive(Serialize)]
        struct Answer {
            status: &'static str,
            #[serde(flatten)]
            inner: Inner,
            list: Vec<&'static str>,
        }
        let value = Answer {
            status: "completed",
            inner: Inner {
                text: "quote \" slash \\ newline \n control \u{1} é 🦀 </script>",
                n: None,
            },
            list: vec!["a", ""],
        };
        // A hint far past the cap reserves no more than the cap.
        let response = fast_json(&value, usize::MAX);
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        assert_eq!(body, serde_json::to_vec(&value).unwrap());
    }
}
