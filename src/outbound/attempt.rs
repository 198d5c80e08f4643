//! How one attempt to send something out went (an alert to a channel, a ticket to a tracker),
//! and the words a delivery log keeps of a failure: the error without the channel's secret URL,
//! the other side's answer on one line.

/// What one attempt to send answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The other side took it.
    Delivered {
        /// HTTP status (250 for SMTP).
        status: u16,
        /// The start of its answer.
        response: String,
    },
    /// Worth trying again (a timeout, a 5xx, a 429…), after `retry_after` when it said so.
    Retry {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The other side's `Retry-After`, seconds.
        retry_after: Option<u64>,
    },
    /// Trying again cannot help (refused as bad, or the channel's settings are wrong).
    Failed {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// A reqwest error with its causes (the top level alone says only "error sending request"),
/// without the URL: a Slack or webhook URL can be a credential, and this text is stored, shown
/// and logged.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match error.url() {
        Some(url) => text.replace(url.as_str(), "(the channel's URL)"),
        None => text,
    }
}

/// `text` on one line, at most 300 characters (for error messages).
pub fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(300).collect()
}
