//! Email alerts over SMTP (lettre): STARTTLS or TLS unless told otherwise, SMTP AUTH when a
//! user is set; one message per delivery, or one digest for the alerts that waited together.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use serde::{Deserialize, Serialize};

use super::render;
use crate::outbound::{AlertMessage, Attempt};

/// An email channel's settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server.
    pub smtp_host: String,
    /// Its port (587 for STARTTLS, 465 for TLS, 25 for neither).
    pub smtp_port: u16,
    /// `starttls` (the default), `tls`, or `none` (loopback and trusted networks only).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// SMTP AUTH user, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub password: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Alerts within this many seconds of the first go in one digest (0: one each).
    #[serde(default = "default_digest")]
    pub digest_secs: i64,
    /// A PEM certificate authority to trust for this server's TLS certificate besides the
    /// system's (an internal relay with its own CA).
    #[serde(default)]
    pub tls_ca_pem: Option<String>,
}

fn default_digest() -> i64 {
    60
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption.
    None,
}

/// Sends `messages` as one email through the SMTP server `channel` names.
pub async fn send(
    settings: &EmailSettings,
    messages: &[AlertMessage],
    timeout: Duration,
) -> Attempt {
    let EmailSettings {
        smtp_host,
        smtp_port,
        security,
        username,
        password,
        from,
        to,
        tls_ca_pem,
        ..
    } = settings;
    let failed = |error: String| Attempt::Failed {
        status: None,
        error,
    };
    let (subject, body) = render::email(messages);
    let from: Mailbox = match from.parse() {
        Ok(from) => from,
        Err(e) => return failed(format!("from: {e}")),
    };
    let mut builder = Message::builder().from(from).subject(subject);
    for address in to {
        match address.parse::<Mailbox>() {
            Ok(mailbox) => builder = builder.to(mailbox),
            Err(e) => return failed(format!("to {address:?}: {e}")),
        }
    }
    let email = match builder.header(ContentType::TEXT_PLAIN).body(body) {
        Ok(email) => email,
        Err(e) => return failed(format!("the message could not be built: {e}")),
    };
    let tls = match security {
        SmtpSecurity::None => None,
        SmtpSecurity::Starttls | SmtpSecurity::Tls => {
            let mut parameters = TlsParameters::builder(smtp_host.clone());
            if let Some(pem) = tls_ca_pem {
                match Certificate::from_pem(pem.as_bytes()) {
                    Ok(ca) => parameters = parameters.add_root_certificate(ca),
                    Err(e) => return failed(format!("tls_ca_pem: {e}")),
                }
            }
            match parameters.build() {
                Ok(parameters) => Some(parameters),
                Err(e) => return failed(format!("TLS settings for {smtp_host:?}: {e}")),
            }
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host)
        .port(*smtp_port)
        .timeout(Some(timeout));
    transport = match (security, tls) {
        (SmtpSecurity::Starttls, Some(tls)) => transport.tls(Tls::Required(tls)),
        (SmtpSecurity::Tls, Some(tls)) => transport.tls(Tls::Wrapper(tls)),
        _ => transport.tls(Tls::None),
    };
    if let (Some(user), Some(password)) = (username, password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    match transport.build().send(email).await {
        Ok(response) => Attempt::Delivered {
            status: u16::from(response.code()),
            response: response.message().collect::<Vec<_>>().join(" "),
        },
        Err(e) if e.is_permanent() => Attempt::Failed {
            status: e.status().map(u16::from),
            error: format!("the SMTP server refused the message: {e}"),
        },
        Err(e) => Attempt::Retry {
            status: e.status().map(u16::from),
            error: format!("SMTP: {e}{}", cause(&e)),
            retry_after: None,
        },
    }
}

fn cause(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
