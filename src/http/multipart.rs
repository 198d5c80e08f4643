//! Multipart framing checked as the bytes stream by, before a parser buffers them. A multipart
//! parser must hold the preamble (before the first boundary) and each part's headers whole
//! while it looks for their end, and looks again with every chunk: a body whose boundary never
//! comes would be buffered entirely and scanned over and over. [`FramingGuard`] follows the
//! framing in one pass with a few bytes of carry-over and refuses a preamble or part head that
//! runs past [`MAX_FRAMING_BYTES`]; part contents stream through unchecked.

use memchr::memmem;

/// Longest preamble, and longest head of one part, accepted.
pub const MAX_FRAMING_BYTES: u64 = 16 << 10;

/// Longest boundary accepted (RFC 2046 allows 70 characters).
const MAX_BOUNDARY: usize = 200;

/// Why a multipart body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No boundary within the first [`MAX_FRAMING_BYTES`].
    #[error("no multipart boundary in the first {MAX_FRAMING_BYTES} bytes of the body (is the Content-Type's boundary the one the body uses?)")]
    NoBoundary,
    /// A part's headers never end.
    #[error("a multipart part's headers run past {MAX_FRAMING_BYTES} bytes without ending")]
    EndlessPartHead,
    /// The boundary itself is unreasonable.
    #[error("the multipart boundary is longer than {MAX_BOUNDARY} characters")]
    LongBoundary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Preamble,
    PartHead,
    PartBody,
    Epilogue,
}

/// Follows a multipart body's framing chunk by chunk; see the module comment.
pub struct FramingGuard {
    /// `--boundary`.
    delimiter: Vec<u8>,
    /// `\r\n--boundary`.
    part_end: Vec<u8>,
    framing: Framing,
    /// Stream offset where the current framing state began.
    state_start: u64,
    /// Stream offset just past the bytes seen so far.
    seen: u64,
    /// The last bytes seen (a match may straddle chunks).
    tail: Vec<u8>,
}

impl FramingGuard {
    /// A guard for a body with this boundary (as in the `Content-Type`).
    pub fn new(boundary: &str) -> Result<FramingGuard, FramingError> {
        if boundary.len() > MAX_BOUNDARY {
            return Err(FramingError::LongBoundary);
        }
        let delimiter = format!("--{boundary}").into_bytes();
        let part_end = format!("\r\n--{boundary}").into_bytes();
        Ok(FramingGuard {
            delimiter,
            part_end,
            framing: Framing::Preamble,
            state_start: 0,
            seen: 0,
            tail: Vec::new(),
        })
    }

    /// Checks the next chunk of the body.
    pub fn check(&mut self, chunk: &[u8]) -> Result<(), FramingError> {
        if self.framing == Framing::Epilogue || chunk.is_empty() {
            self.seen += chunk.len() as u64;
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.tail);
        let base = self.seen - buf.len() as u64;
        buf.extend_from_slice(chunk);
        self.seen += chunk.len() as u64;
        loop {
            let from = self.state_start.saturating_sub(base) as usize;
            let window = buf.get(from..).unwrap_or_default();
            match self.framing {
                Framing::Epilogue => break,
                Framing::Preamble => match memmem::find(window, &self.delimiter) {
                    Some(at) => {
                        self.enter(Framing::PartHead, base, from + at + self.delimiter.len())
                    }
                    None if self.seen - self.state_start > MAX_FRAMING_BYTES => {
                        return Err(FramingError::NoBoundary)
                    }
                    None => break,
                },
                Framing::PartBody => match memmem::find(window, &self.part_end) {
                    Some(at) => {
                        self.enter(Framing::PartHead, base, from + at + self.part_end.len())
                    }
                    None => break,
                },
                Framing::PartHead => {
                    // The closing `--` right after the delimiter (checked while the state's first
                    // bytes are still in view: the tail keeps more than two).
                    if self.state_start >= base && window.starts_with(b"--") {
                        self.enter(Framing::Epilogue, base, from + 2);
                    } else if let Some(at) = memmem::find(window, b"\r\n\r\n") {
                        self.enter(Framing::PartBody, base, from + at + 4);
                    } else if self.seen - self.state_start > MAX_FRAMING_BYTES {
                        return Err(FramingError::EndlessPartHead);
                    } else {
                        break;
                    }
                }
            }
        }
        let keep = self.part_end.len().min(buf.len());
        buf.drain(..buf.len() - keep);
        self.tail = buf;
        Ok(())
    }

    fn enter(&mut self, framing: Framing, base: u64, at: usize) {
        self.framing = framing;
        self.state_start = base + at as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(guard: &mut FramingGuard, body: &[u8], chunk: usize) -> Result<(), FramingError> {
        body.chunks(chunk).try_for_each(|c| guard.check(c))
    }

    #[test]
    fn well_formed_bodies_pass_in_any_chunking() {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 100_000));
        body.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nv\r\n--XyZ--\r\n",
        );
        body.extend(std::iter::repeat_n(b'e', 100_000));
        for chunk in [1, 2, 3, 7, 64, 4096, body.len()] {
            let mut guard = FramingGuard::new("XyZ").unwrap();
            feed(&mut guard, &body, chunk).unwrap();
            assert_eq!(guard.framing, Framing::Epilogue, "chunk {chunk}");
        }
    }

    #[test]
    fn a_missing_boundary_is_refused_early() {
        let zeros = vec![0u8; 1 << 20];
        let mut guard = FramingGuard::new("B").unwrap();
        let err = feed(&mut guard, &zeros, 4096).unwrap_err();
        assert_eq!(err, FramingError::NoBoundary);
        assert!(guard.seen <= MAX_FRAMING_BYTES + 4096);
    }

    #[test]
    fn endless_part_heads_are_refused() {
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Junk: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        let mut guard = FramingGuard::new("B").unwrap();
        assert_eq!(
            feed(&mut guard, &body, 1000).unwrap_err(),
            FramingError::EndlessPartHead
        );
        // A second part's head is checked too.
        let mut body = b"--B\r\n\r\nvalue\r\n--B\r\nX: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        let mut guard = FramingGuard::new("B").unwrap();
        assert_eq!(
            feed(&mut guard, &body, 333).unwrap_err(),
            FramingError::EndlessPartHead
        );
    }

    #[test]
    fn long_boundaries_are_refused() {
        assert!(FramingGuard::new(&"b".repeat(201)).is_err());
    }
}
