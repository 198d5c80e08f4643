//! Channels: where an alert goes (a signed webhook, a Slack or Mattermost incoming webhook,
//! PagerDuty's Events API v2, email over SMTP), their settings, and what one attempt to send
//! there answered. Rendering per kind lives in `render.rs`; retries in `deliver.rs`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::email::EmailSettings;
use super::render;
use crate::outbound::{describe, one_line, AlertMessage, Attempt};
use crate::tickets::{GithubSettings, JiraSettings, TrackerSettings};

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Longest URL, address list or secret a channel may hold.
const MAX_SETTING: usize = 2048;
/// Most of the other side's answer kept with a delivery.
const MAX_RESPONSE: usize = 2048;

/// A channel's settings, as sent to `/api/v1/channels` (`"config": {"kind": "webhook", …}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// A JSON POST signed with HMAC-SHA256 (`Faultline-Signature: t=…,sha256=…` over
    /// `{t}.{body}`, and `X-Hub-Signature-256: sha256=…` over the body).
    Webhook {
        /// Where to POST.
        url: String,
        /// The shared signing secret.
        secret: String,
    },
    /// A Slack (or Mattermost) incoming webhook: `text` plus blocks.
    Slack {
        /// The incoming webhook's URL (a secret in itself).
        url: String,
    },
    /// PagerDuty Events API v2: one incident per group (`dedup_key`), resolved with the group.
    Pagerduty {
        /// The service integration's routing key.
        routing_key: String,
        /// The Events API endpoint (PagerDuty's unless set; EU accounts use their own).
        #[serde(default = "pagerduty_url")]
        url: String,
        /// `critical`, `error` (the default), `warning` or `info`.
        #[serde(default = "default_severity")]
        severity: String,
    },
    /// Email over SMTP; alerts of the same channel within `digest_secs` go in one message.
    Email(EmailSettings),
    /// A Jira project (Cloud: REST v3; Data Center: v2): one issue per group, kept in step
    /// with the group both ways.
    Jira(JiraSettings),
    /// A GitHub repository's issues: one per group, closed and reopened with it.
    Github(GithubSettings),
}

fn pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_owned()
}

fn default_severity() -> String {
    "error".to_owned()
}

impl ChannelConfig {
    /// The kind's name (`webhook`, `slack`, `pagerduty`, `email`).
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Slack { .. } => "slack",
            ChannelConfig::Pagerduty { .. } => "pagerduty",
            ChannelConfig::Email(_) => "email",
            ChannelConfig::Jira(_) => "jira",
            ChannelConfig::Github(_) => "github",
        }
    }

    /// The tracker a Jira or GitHub channel names (the ticket desk delivers to those).
    pub fn tracker(&self) -> Option<TrackerSettings<'_>> {
        match self {
            ChannelConfig::Jira(jira) => Some(TrackerSettings::Jira(jira)),
            ChannelConfig::Github(github) => Some(TrackerSettings::Github(github)),
            _ => None,
        }
    }

    /// Seconds an alert waits for others to share its message (email digests), else 0.
    pub fn digest_secs(&self) -> i64 {
        match self {
            ChannelConfig::Email(email) => email.digest_secs,
            _ => 0,
        }
    }

    /// Checks the settings; the error says which one to fix.
    pub fn validate(&self) -> Result<(), String> {
        let url_ok = |name: &str, url: &str| -> Result<(), String> {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("{name}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!("{name} must be an http:// or https:// URL"));
            }
            if url.len() > MAX_SETTING {
                return Err(format!("{name} is longer than {MAX_SETTING} bytes"));
            }
            Ok(())
        };
        let nonempty = |name: &str, value: &str| -> Result<(), String> {
            if value.trim().is_empty() || value.len() > MAX_SETTING {
                return Err(format!("{name} must be 1 to {MAX_SETTING} bytes"));
            }
            Ok(())
        };
        match self {
            ChannelConfig::Webhook { url, secret } => {
                url_ok("url", url)?;
                if secret.len() < 16 || secret.len() > MAX_SETTING {
                    return Err(
                        "secret must be 16 to 2048 bytes (receivers check the signature with it)"
                            .into(),
                    );
                }
            }
            ChannelConfig::Slack { url } => url_ok("url", url)?,
            ChannelConfig::Pagerduty {
                routing_key,
                url,
                severity,
            } => {
                nonempty("routing_key", routing_key)?;
                url_ok("url", url)?;
                if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
                    return Err("severity must be critical, error, warning or info".into());
                }
            }
            ChannelConfig::Email(EmailSettings {
                smtp_host,
                from,
                to,
                digest_secs,
                username,
                password,
                tls_ca_pem,
                ..
            }) => {
                nonempty("smtp_host", smtp_host)?;
                from.parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("from: {e}"))?;
                if to.is_empty() || to.len() > 100 {
                    return Err("to must list 1 to 100 addresses".into());
                }
                for address in to {
                    address
                        .parse::<lettre::message::Mailbox>()
                        .map_err(|e| format!("to {address:?}: {e}"))?;
                }
                if !(0..=3600).contains(digest_secs) {
                    return Err("digest_secs must be 0 to 3600".into());
                }
                if username.is_some() != password.is_some() {
                    return Err("give both username and password, or neither".into());
                }
                if let Some(pem) = tls_ca_pem {
                    lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes())
                        .map_err(|e| format!("tls_ca_pem is not a PEM certificate: {e}"))?;
                }
            }
            ChannelConfig::Jira(jira) => {
                url_ok("base_url", &jira.base_url)?;
                jira.validate()?;
            }
            ChannelConfig::Github(github) => {
                url_ok("api_url", &github.api_url)?;
                github.validate()?;
            }
        }
        Ok(())
    }

    /// The settings with every secret replaced (what the API shows).
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let hidden = json!("(hidden)");
        match self {
            ChannelConfig::Webhook { .. } => value["secret"] = hidden,
            ChannelConfig::Slack { url } => {
                // The URL is the credential: show where it goes, not the path.
                value["url"] = json!(reqwest::Url::parse(url)
                    .ok()
                    .and_then(|u| u
                        .host_str()
                        .map(|h| format!("{}://{h}/(hidden)", u.scheme())))
                    .unwrap_or_else(|| "(hidden)".into()));
            }
            ChannelConfig::Pagerduty { .. } => value["routing_key"] = hidden,
            ChannelConfig::Email(EmailSettings { password, .. }) => {
                if password.is_some() {
                    value["password"] = hidden;
                }
            }
            ChannelConfig::Jira(jira) => {
                value["api_token"] = hidden.clone();
                if jira.webhook_secret.is_some() {
                    value["webhook_secret"] = hidden;
                }
            }
            ChannelConfig::Github(github) => {
                value["token"] = hidden.clone();
                if github.webhook_secret.is_some() {
                    value["webhook_secret"] = hidden;
                }
            }
        }
        value
    }
}

/// Sends messages out: one HTTP client (connection reuse) and the timeout of an attempt.
#[derive(Clone)]
pub struct Sender {
    /// The HTTP client every channel (and tracker) uses.
    pub http: reqwest::Client,
    timeout: Duration,
}

impl Sender {
    /// A sender whose every attempt ends within `timeout`.
    pub fn new(timeout: Duration) -> Sender {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Sender { http, timeout }
    }

    /// Sends `messages` (one, or an email digest) as delivery `delivery_id` through `channel`.
    pub async fn send(
        &self,
        channel: &ChannelConfig,
        delivery_id: &str,
        messages: &[AlertMessage],
    ) -> Attempt {
        let Some(first) = messages.first() else {
            return Attempt::Failed {
                status: None,
                error: "nothing to send".into(),
            };
        };
        match channel {
            ChannelConfig::Webhook { url, secret } => {
                let body = serde_json::to_vec(&render::webhook(delivery_id, first))
                    .expect("JSON serializes");
                let timestamp = crate::clock::now();
                let (stamped, plain) = sign(secret.as_bytes(), timestamp, &body);
                let request = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("faultline-delivery", delivery_id)
                    .header("faultline-event", first.event.as_str())
                    .header("faultline-signature", stamped)
                    .header("x-hub-signature-256", plain)
                    .body(body);
                self.http_attempt(request).await
            }
            ChannelConfig::Slack { url } => {
                let request = self.http.post(url).json(&render::slack(first));
                self.http_attempt(request).await
            }
            ChannelConfig::Pagerduty {
                routing_key,
                url,
                severity,
            } => {
                let request =
                    self.http
                        .post(url)
                        .json(&render::pagerduty(routing_key, severity, first));
                self.http_attempt(request).await
            }
            ChannelConfig::Email(email) => super::email::send(email, messages, self.timeout).await,
            // Trackers keep state per group: the dispatcher hands them to `crate::tickets`.
            ChannelConfig::Jira(_) | ChannelConfig::Github(_) => Attempt::Failed {
                status: None,
                error: "tracker channels are delivered by the ticket desk".into(),
            },
        }
    }

    async fn http_attempt(&self, request: reqwest::RequestBuilder) -> Attempt {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Retry {
                    status: None,
                    error: describe(&e),
                    retry_after: None,
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = match response.bytes().await {
            Ok(bytes) => {
                String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RESPONSE)]).into_owned()
            }
            Err(e) => format!("(answer not read: {})", describe(&e)),
        };
        match status {
            200..=299 => Attempt::Delivered {
                status,
                response: text,
            },
            408 | 425 | 429 | 500..=599 => Attempt::Retry {
                status: Some(status),
                error: format!("the receiver answered {status}: {}", one_line(&text)),
                retry_after,
            },
            _ => Attempt::Failed {
                status: Some(status),
                error: format!(
                    "the receiver refused it with {status}: {} (check the channel's settings)",
                    one_line(&text)
                ),
            },
        }
    }
}

/// The two signatures of a webhook body: `t={timestamp},sha256={hmac over "{t}.{body}"}`
/// (replay-safe) and `sha256={hmac over body}` (GitHub's `X-Hub-Signature-256`).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> (String, String) {
    let mut stamped = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    stamped.update(format!("{timestamp}.").as_bytes());
    stamped.update(body);
    let mut plain = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    plain.update(body);
    (
        format!(
            "t={timestamp},sha256={}",
            hex::encode(stamped.finalize().into_bytes())
        ),
        format!("sha256={}", hex::encode(plain.finalize().into_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_known_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") from RFC 4231's
        // commonly cited example.
        let (_, plain) = sign(b"key", 0, b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            plain,
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let (stamped, _) = sign(b"key", 17, b"body");
        assert!(stamped.starts_with("t=17,sha256="));
    }

    #[test]
    fn secrets_are_hidden() {
        let c = ChannelConfig::Slack {
            url: "https://hooks.slack.com/services/T0/B0/XYZ".into(),
        };
        assert_eq!(c.redacted()["url"], "https://hooks.slack.com/(hidden)");
        let w = ChannelConfig::Webhook {
            url: "http://x/".into(),
            secret: "0123456789abcdef".into(),
        };
        assert!(!w.redacted().to_string().contains("0123456789abcdef"));
    }
}
