//! Outgoing mail (password-reset links).

use std::sync::Mutex;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::config::{MailConfig, MailTransport};
use crate::error::AuthError;

#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError>;
}

/// The configured mailer.
pub fn from_config(config: &MailConfig) -> Result<std::sync::Arc<dyn Mailer>, AuthError> {
    Ok(match config.transport {
        MailTransport::Log => std::sync::Arc::new(LogMailer),
        MailTransport::Smtp => {
            let url = config.smtp_url.as_deref().ok_or_else(|| AuthError::Config("mail.smtp_url is not set".into()))?;
            std::sync::Arc::new(SmtpMailer::new(url, &config.from)?)
        }
    })
}

/// Writes mails to the log instead of sending them: in development the reset link is read
/// from the log. Never configure it where others can read the log.
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError> {
        tracing::info!(to, subject, body = text_body, "mail (log transport; not sent)");
        Ok(())
    }
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// `url` as lettre reads it: `smtp://host:25`, `smtp://host:587?tls=required`,
    /// `smtps://user:password@host:465`.
    pub fn new(url: &str, from: &str) -> Result<Self, AuthError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| AuthError::Config(format!("mail.smtp_url: {e}")))?
            .build();
        let from = from.parse().map_err(|e| AuthError::Config(format!("mail.from: {e}")))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text_body.to_owned())
            .map_err(|e| MailError(e.to_string()))?;
        self.transport.send(message).await.map(drop).map_err(|e| MailError(e.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Keeps mails in memory instead of sending them: for tests.
#[derive(Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<SentMail>>,
    arrived: Notify,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<SentMail> {
        self.sent.lock().expect("mail list lock").clone()
    }

    /// Waits until a mail to `to` has been sent and returns the latest one. Mails are sent in
    /// the background, after the request that caused them has been answered.
    pub async fn wait_for(&self, to: &str) -> SentMail {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(mail) = self.sent().into_iter().rev().find(|m| m.to == to) {
                return mail;
            }
            arrived.await;
        }
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError> {
        let mail = SentMail { to: to.to_owned(), subject: subject.to_owned(), body: text_body.to_owned() };
        self.sent.lock().expect("mail list lock").push(mail);
        self.arrived.notify_waiters();
        Ok(())
    }
}
