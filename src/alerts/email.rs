//! Email alerts over SMTP (lettre): STARTTLS or TLS unless told otherwise, SMTP AUTH when a
//! user is set; one message per delivery, or one digest for the alerts that waited together.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
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
        tls_ca_pem,
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
