//! Email alerts over SMTP (lettre): STARTTLS or TLS unless told otherwise, SMTP AUTH when a
//! user is set; one message per delivery, or one digest for the alerts that waited together.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channels::{Attempt, ChannelConfig, SmtpSecurity};
use super::message::AlertMessage;
use super::render;

/// Sends `messages` as one email through the SMTP server `channel` names.
pub async fn send(
    channel: &ChannelConfig,
    messages: &[AlertMessage],
    timeout: Duration,
) -> Attempt {
    let ChannelConfig::Email {
        smtp_host,
        smtp_port,
        security,
        username,
        password,
        from,
        to,
        ..
    } = channel
    else {
        return Attempt::Failed {
            status: None,
            error: "not an email channel".into(),
        };
    };
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
    let transport = match security {
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(smtp_host),
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(smtp_host),
        SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            smtp_host,
        )),
    };
    let mut transport = match transport {
        Ok(t) => t.port(*smtp_port).timeout(Some(timeout)),
        Err(e) => return failed(format!("smtp_host {smtp_host:?}: {e}")),
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
