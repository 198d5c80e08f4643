//! Sentry's envelope format: one JSON header line, then items, each a JSON header line and a
//! payload of `length` bytes (or up to the next newline when the header gives no length).
//! Items are kept as bytes: the event is read by [`super::Event`], attachments are stored as
//! they came. Every count and size is capped, and a malformed envelope says where it broke.

use bytes::Bytes;
use serde_json::{Map, Value};

/// Most items one envelope may carry (SDKs send one event, a few attachments, a session).
const MAX_ITEMS: usize = 100;
/// Longest header line (the envelope's or an item's).
const MAX_HEADER_LINE: usize = 64 << 10;

/// A parsed envelope: its header and items, in order.
#[derive(Debug)]
pub struct Envelope {
    /// The envelope header (`event_id`, `dsn`, `sdk`, `sent_at`).
    pub header: Map<String, Value>,
    /// The items.
    pub items: Vec<EnvelopeItem>,
}

/// One item: `event`, `attachment`, `session`, `transaction`, `client_report`…
#[derive(Debug)]
pub struct EnvelopeItem {
    /// The item header's `type`.
    pub kind: String,
    /// The whole item header (`filename`, `attachment_type`, `content_type`…).
    pub header: Map<String, Value>,
    /// The payload.
    pub payload: Bytes,
}

impl EnvelopeItem {
    /// A string field of the item header.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The envelope header line is missing or not a JSON object.
    #[error("the envelope header (first line) is not a JSON object")]
    BadHeader,
    /// An item header is not a JSON object with a `type`.
    #[error("item {0}: its header is not a JSON object with a \"type\"")]
    BadItemHeader(usize),
    /// An item's `length` runs past the end of the body.
    #[error("item {0}: its length runs past the end of the envelope")]
    Truncated(usize),
    /// A header line is longer than the cap.
    #[error("a header line is longer than {MAX_HEADER_LINE} bytes")]
    HeaderTooLong,
    /// More items than the cap.
    #[error("more than {MAX_ITEMS} items")]
    TooManyItems,
}

/// The next line of `body` from `at` (without its `\n`), and where the one after starts.
fn line(body: &[u8], at: usize) -> Result<(&[u8], usize), EnvelopeError> {
    let rest = &body[at..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    if end > MAX_HEADER_LINE {
        return Err(EnvelopeError::HeaderTooLong);
    }
    let next = (at + end + 1).min(body.len());
    Ok((&rest[..end], next))
}

fn object(text: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(text).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Reads an envelope.
pub fn parse(body: &Bytes) -> Result<Envelope, EnvelopeError> {
    let (head, mut at) = line(body, 0)?;
    let header = object(head).ok_or(EnvelopeError::BadHeader)?;
    let mut items = Vec::new();
    while at < body.len() {
        let (item_head, payload_start) = line(body, at)?;
        if item_head.iter().all(u8::is_ascii_whitespace) {
            // Blank lines between items (a trailing newline) are allowed.
            at = payload_start;
            continue;
        }
        if items.len() == MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems);
        }
        let n = items.len();
        let item_header = object(item_head).ok_or(EnvelopeError::BadItemHeader(n))?;
        let kind = item_header
            .get("type")
            .and_then(Value::as_str)
            .ok_or(EnvelopeError::BadItemHeader(n))?
            .to_owned();
        let (payload, next) = match item_header.get("length").and_then(Value::as_u64) {
            Some(length) => {
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|l| payload_start.checked_add(l))
                    .filter(|&end| end <= body.len())
                    .ok_or(EnvelopeError::Truncated(n))?;
                // The payload may be followed by a newline.
                let next = if body.get(end) == Some(&b'\n') {
                    end + 1
                } else {
                    end
                };
                (body.slice(payload_start..end), next)
            }
            None => {
                let rest = &body[payload_start..];
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                (
                    body.slice(payload_start..payload_start + end),
                    (payload_start + end + 1).min(body.len()),
                )
            }
        };
        items.push(EnvelopeItem {
            kind,
            header: item_header,
            payload,
        });
        at = next;
    }
    Ok(Envelope { header, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Envelope, EnvelopeError> {
        parse(&Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn items_with_and_without_length() {
        let envelope = parse_str(
            "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n\
             {\"type\":\"attachment\",\"length\":10,\"filename\":\"a.txt\"}\n\
             \u{feff}Hello\r\n\n\
             {\"type\":\"event\"}\n\
             {\"message\":\"hi\"}\n",
        )
        .unwrap();
        assert_eq!(
            envelope.header["event_id"],
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        assert_eq!(envelope.items.len(), 2);
        assert_eq!(envelope.items[0].kind, "attachment");
        assert_eq!(
            &envelope.items[0].payload[..],
            "\u{feff}Hello\r\n".as_bytes()
        );
        assert_eq!(envelope.items[0].header_str("filename"), Some("a.txt"));
        assert_eq!(envelope.items[1].kind, "event");
        assert_eq!(&envelope.items[1].payload[..], b"{\"message\":\"hi\"}");
    }

    #[test]
    fn a_payload_without_trailing_newline_and_an_empty_one() {
        let envelope = parse_str(
            "{}\n{\"type\":\"attachment\",\"length\":0}\n\n{\"type\":\"event\",\"length\":2}\n{}",
        )
        .unwrap();
        assert_eq!(envelope.items.len(), 2);
        assert!(envelope.items[0].payload.is_empty());
        assert_eq!(&envelope.items[1].payload[..], b"{}");
    }

    #[test]
    fn malformed_envelopes_say_where() {
        assert_eq!(
            parse_str("not json\n").unwrap_err(),
            EnvelopeError::BadHeader
        );
        assert_eq!(
            parse_str("{}\n{\"length\":2}\n{}").unwrap_err(),
            EnvelopeError::BadItemHeader(0)
        );
        assert_eq!(
            parse_str("{}\n{\"type\":\"event\",\"length\":99}\n{}").unwrap_err(),
            EnvelopeError::Truncated(0)
        );
        let many = format!("{{}}\n{}", "{\"type\":\"session\"}\n{}\n".repeat(101));
        assert_eq!(parse_str(&many).unwrap_err(), EnvelopeError::TooManyItems);
    }
}
