//! Accepting what real crash reporters put on the wire. Crashpad's socket transport sends
//! `HTTP/1.0` requests with `Transfer-Encoding: chunked`, which hyper refuses (HTTP/1.0 has no
//! chunked encoding). This listener reads each connection's first request head and, for that
//! one case, presents it to hyper as `HTTP/1.1` with `Connection: close` — the body bytes are
//! untouched, and the client, which closes after one request anyway, sees a normal response.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Longest request head inspected; longer heads pass through untouched (hyper judges them).
const MAX_HEAD: usize = 64 * 1024;

enum State {
    /// Buffering the first request head.
    Head,
    /// Handing out the (possibly rewritten) head and whatever body bytes came with it.
    Replay,
    /// Plain pass-through.
    Through,
}

/// A connection whose first request head may be rewritten; see the module comment. The first
/// head must arrive within the header deadline (hyper sees no byte of it until it is complete,
/// so its own header timer cannot start).
pub struct CompatStream {
    inner: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    head_deadline: Pin<Box<tokio::time::Sleep>>,
}

impl CompatStream {
    /// Wraps an accepted connection whose first request head must arrive within `head_timeout`.
    pub fn new(inner: TcpStream, head_timeout: std::time::Duration) -> CompatStream {
        CompatStream {
            inner,
            buf: Vec::new(),
            pos: 0,
            state: State::Head,
            head_deadline: Box::pin(tokio::time::sleep(head_timeout)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Rewrites an `HTTP/1.0` chunked request head (`head` ends at `end`, the `\r\n\r\n`) to
/// `HTTP/1.1` with `Connection: close`; returns the new buffer.
pub fn rewrite_head(buf: &[u8], end: usize) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let method_and_target = request_line.strip_suffix(" HTTP/1.0")?;
    let headers: Vec<&str> = lines.collect();
    let chunked = headers.iter().any(|h| {
        h.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    if !chunked {
        return None;
    }
    let mut out = format!("{method_and_target} HTTP/1.1\r\nConnection: close");
    for header in headers.iter().filter(|h| {
        !h.split_once(':')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
    }) {
        out.push_str("\r\n");
        out.push_str(header);
    }
    let mut rewritten = out.into_bytes();
    rewritten.extend_from_slice(&buf[end..]);
    Some(rewritten)
}

impl AsyncRead for CompatStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Through => return Pin::new(&mut this.inner).poll_read(cx, out),
                State::Replay => {
                    let rest = &this.buf[this.pos..];
                    let n = rest.len().min(out.remaining());
                    out.put_slice(&rest[..n]);
                    this.pos += n;
                    if this.pos == this.buf.len() {
                        this.buf = Vec::new();
                        this.state = State::Through;
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Head => {
                    let mut chunk = [0u8; 4096];
                    let mut read = ReadBuf::new(&mut chunk);
                    if Pin::new(&mut this.inner)
                        .poll_read(cx, &mut read)?
                        .is_pending()
                    {
                        ready!(this.head_deadline.as_mut().poll(cx));
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the request head did not arrive in time",
                        )));
                    }
                    let filled = read.filled();
                    if filled.is_empty() {
                        // EOF before a full head: hand over what there is.
                        this.state = if this.buf.is_empty() {
                            State::Through
                        } else {
                            State::Replay
                        };
                        continue;
                    }
                    this.buf.extend_from_slice(filled);
                    if let Some(end) = find(&this.buf, b"\r\n\r\n") {
                        if let Some(rewritten) = rewrite_head(&this.buf, end) {
                            this.buf = rewritten;
                        }
                        this.state = State::Replay;
                    } else if this.buf.len() > MAX_HEAD {
                        this.state = State::Replay;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for CompatStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    // Vectored, as the socket is: hyper then writes a response's head and body with one
    // `writev` instead of first copying the body into its own buffer (a processed crash's JSON
    // is tens to hundreds of kilobytes).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http10_chunked_heads_are_rewritten() {
        let req = b"POST /api/42/minidump/ HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let end = find(req, b"\r\n\r\n").unwrap();
        let out = rewrite_head(req, end).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /api/42/minidump/ HTTP/1.1\r\nConnection: close\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello"));
        assert!(!text.contains("keep-alive"));
        let plain = b"POST /submit HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
        assert!(rewrite_head(plain, find(plain, b"\r\n\r\n").unwrap()).is_none());
        let http11 = b"POST /submit HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(rewrite_head(http11, find(http11, b"\r\n\r\n").unwrap()).is_none());
    }
}
