//! A request answered before its body was read to the end (refused early: a wrong content type,
//! a missing key, a size limit) leaves the rest of that body on the connection. hyper then closes
//! the connection after the response, but the response did not say so: a client that pools
//! connections sends its next request down a socket that is closing and gets a broken pipe
//! instead of an answer. Such responses say `Connection: close` (HTTP/1 only; HTTP/2 streams
//! end on their own), so the client opens a new connection for its next request.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

/// Middleware: a response to an HTTP/1 request whose body was not read to its end carries
/// `Connection: close`.
pub async fn close_if_body_unread(request: Request, next: Next) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let ended = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(EndWatch {
            inner: body,
            ended: Arc::clone(&ended),
        })
    });
    let mut response = next.run(request).await;
    if http1 && !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records whether it was read to its end (or had nothing to read) by the
/// time the handler let go of it.
struct EndWatch {
    inner: Body,
    ended: Arc<AtomicBool>,
}

impl http_body::Body for EndWatch {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for EndWatch {
    fn drop(&mut self) {
        use http_body::Body as _;
        if self.inner.is_end_stream() {
            self.ended.store(true, Ordering::Release);
        }
    }
}
