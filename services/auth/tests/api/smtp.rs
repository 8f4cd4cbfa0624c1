//! Mail over SMTP, against a minimal SMTP server in the test: a test double standing for the
//! mail relay outside the platform. It speaks just enough SMTP to accept one message.

use std::sync::{Arc, Mutex};

use ollamanet_auth::{Mailer, SmtpMailer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts SMTP sessions and keeps each message's envelope and DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink.test ESMTP\r\n").await.unwrap();
                let mut message = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 sink.test\r\n"
                    } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
                        message.push_str(&line);
                        message.push('\n');
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            message.push_str(&data);
                            message.push('\n');
                        }
                        store.lock().unwrap().push(std::mem::take(&mut message));
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn mail_goes_out_over_smtp() {
    let (port, received) = smtp_sink().await;
    let mailer = SmtpMailer::new(&format!("smtp://127.0.0.1:{port}"), "OllamaNet <noreply@ollamanet.test>").unwrap();
    mailer.send("ada@example.com", "Reset your password", "Open http://app.test/reset?token=abc").await.unwrap();
    let messages = received.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("MAIL FROM:<noreply@ollamanet.test>"), "{m}");
    assert!(m.contains("RCPT TO:<ada@example.com>"), "{m}");
    assert!(m.contains("Subject: Reset your password"), "{m}");
    assert!(m.contains("/reset?token=abc"), "{m}");
}

#[tokio::test]
async fn an_unreachable_relay_is_an_error_not_a_hang() {
    // Port 1 refuses connections.
    let mailer = SmtpMailer::new("smtp://127.0.0.1:1", "OllamaNet <noreply@ollamanet.test>").unwrap();
    assert!(mailer.send("ada@example.com", "s", "b").await.is_err());
}
