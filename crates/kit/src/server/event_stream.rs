//! Event streams over HTTP/1.1, written straight to the socket instead of through hyper.
//!
//! Idle reply streams are most of what a chat server holds open, and over HTTP/1.1 each is a
//! connection of its own. hyper's HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB write
//! buffer for as long as it lives, neither settable lower, which made an idle stream cost 11 KiB
//! (docs/performance.md, "Conversation"). A request that can only be asking for an event stream
//! (`GET`, HTTP/1.1, `Accept: text/event-stream`, no body, no upgrade, its whole head in the bytes
//! the client sent first) is answered here instead: its head parsed with `httparse`, the service
//! called, and the response written frame by frame, nothing buffered between frames. The
//! connection closes after that one response (`Connection: close`), so keep-alive, pipelining and
//! upgrades never arise; an event stream is long, and clients reconnect anyway. Every other
//! request, including one whose head arrives in pieces, goes to hyper.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Buf;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Service, ServiceExt};

/// Longer heads (large cookies) go to hyper.
const MAX_HEAD: usize = 4096;
const MAX_HEADERS: usize = 64;

/// A request this module answers, read off the front of its connection.
pub(super) struct EventStreamRequest {
    request: http::Request<Body>,
    /// Bytes of the head, still in the socket (peeked, not consumed).
    head_len: usize,
}

/// The request at the start of `stream`, if it is one this module answers. Peeks: nothing is
/// consumed, so hyper can be handed the connection as it was.
pub(super) async fn peek(stream: &TcpStream, peer: SocketAddr) -> std::io::Result<Option<EventStreamRequest>> {
    let mut buf = vec![0; MAX_HEAD];
    let n = stream.peek(&mut buf).await?;
    Ok(parse(&buf[..n]).map(|(head_len, mut request)| {
        request.extensions_mut().insert(ConnectInfo(peer));
        EventStreamRequest { request, head_len }
    }))
}

/// The head's length and the request, if `bytes` start with a complete head of a request this
/// module answers.
fn parse(bytes: &[u8]) -> Option<(usize, http::Request<Body>)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = head.parse(bytes).ok()? else {
        return None;
    };
    if head.method != Some("GET") || head.version != Some(1) {
        return None;
    }
    let mut request = http::Request::builder().method(Method::GET).uri(head.path?);
    let mut wants_events = false;
    for h in head.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        match name {
            header::ACCEPT => wants_events |= value.to_str().is_ok_and(|v| v.contains("text/event-stream")),
            // A body or a protocol change: hyper's to handle.
            header::CONTENT_LENGTH if value != "0" => return None,
            header::TRANSFER_ENCODING | header::UPGRADE | header::EXPECT => return None,
            _ => {}
        }
        request = request.header(name, value);
    }
    let request = request.body(Body::empty()).ok()?;
    wants_events.then_some((head_len, request))
}

/// Answers `req` on `stream` and closes the connection.
pub(super) async fn serve<S>(mut stream: TcpStream, req: EventStreamRequest, app: S) -> std::io::Result<()>
where
    S: Service<http::Request<Body>, Response = axum::response::Response, Error = std::convert::Infallible>,
{
    // The head was only peeked; take it off the socket.
    let mut head = vec![0; req.head_len];
    stream.read_exact(&mut head).await?;
    drop(head);

    let Ok(response) = app.oneshot(req.request).await;
    let (parts, body) = response.into_parts();
    let framing = Framing::of(&parts, &body);
    stream.write_all(&response_head(&parts, framing, &body)).await?;
    if framing != Framing::None {
        write_body(&mut stream, body, framing).await?;
    }
    stream.shutdown().await
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// 1xx, 204 and 304 have none.
    None,
    Length,
    Chunked,
}

impl Framing {
    fn of(parts: &http::response::Parts, body: &Body) -> Self {
        let status = parts.status;
        if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Self::None
        } else if parts.headers.contains_key(header::CONTENT_LENGTH) || body.size_hint().exact().is_some() {
            Self::Length
        } else {
            Self::Chunked
        }
    }
}

fn response_head(parts: &http::response::Parts, framing: Framing, body: &Body) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let status = parts.status;
    let _ = write!(head, "HTTP/1.1 {} {}\r\n", status.as_str(), status.canonical_reason().unwrap_or(""));
    for (name, value) in &parts.headers {
        // Framing and connection management are this writer's to say.
        if matches!(*name, header::CONNECTION | header::TRANSFER_ENCODING) || name.as_str() == "keep-alive" {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length if !parts.headers.contains_key(header::CONTENT_LENGTH) => {
            let len = body.size_hint().exact().unwrap_or(0);
            let _ = write!(head, "content-length: {len}\r\n");
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length | Framing::None => {}
    }
    if !parts.headers.contains_key(header::DATE) {
        let _ = write!(head, "date: {}\r\n", httpdate::fmt_http_date(SystemTime::now()));
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Writes each data frame as it comes. While waiting for the next one it reads (and discards)
/// whatever the client sends, which is how a client that has gone away is noticed while the stream
/// is idle; the body is then dropped, ending the stream.
async fn write_body(stream: &mut TcpStream, body: Body, framing: Framing) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.split();
    let mut body = std::pin::pin!(body);
    let mut discard = [0u8; 64];
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    // Trailers are dropped: HTTP/1.1 clients seldom read them and nothing here sends any.
                    let Ok(mut data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    if framing == Framing::Chunked {
                        let size = format!("{:x}\r\n", data.len());
                        // One write for the chunk: its size line, the data and the closing CRLF.
                        let mut chunk = Buf::chain(size.as_bytes(), &mut data).chain(&b"\r\n"[..]);
                        writer.write_all_buf(&mut chunk).await?;
                    } else {
                        writer.write_all_buf(&mut data).await?;
                    }
                }
                // The body failed: the connection is closed without the last chunk, so the client
                // sees the response cut short rather than complete.
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => break,
            },
            read = reader.read(&mut discard) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
        }
    }
    if framing == Framing::Chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::response::sse::{Event, Sse};
    use futures::StreamExt;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tokio::net::TcpListener;
    use tokio::sync::{mpsc, oneshot};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// Sets `dropped` when dropped: tells a test the server let go of a stream.
    struct DropSignal(Option<oneshot::Sender<()>>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    /// A server whose `/events` streams what is sent into the returned channel (one stream at a
    /// time) and reports when that stream is dropped; `/` answers "ok".
    async fn server() -> (SocketAddr, mpsc::Sender<&'static str>, oneshot::Receiver<()>) {
        let (tx, rx) = mpsc::channel::<&'static str>(8);
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let events = std::sync::Mutex::new(Some((rx, DropSignal(Some(dropped_tx)))));
        let events = std::sync::Arc::new(events);
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" })).route(
            "/events",
            axum::routing::get(move || {
                let (rx, signal) = events.lock().unwrap().take().expect("one stream per test");
                let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) }).map(
                    move |data| {
                        let _held = &signal;
                        Ok::<_, std::convert::Infallible>(Event::default().data(data))
                    },
                );
                async move { Sse::new(stream) }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(super::super::serve(listener, app, CancellationToken::new(), Default::default()));
        (addr, tx, dropped_rx)
    }

    async fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> http::Response<hyper::body::Incoming> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let mut req = http::Request::get(format!("http://{addr}{path}"));
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        client.request(req.body(Empty::new()).unwrap()).await.unwrap()
    }

    async fn next_data(body: &mut hyper::body::Incoming) -> Option<bytes::Bytes> {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("a frame in time");
        frame.map(|f| f.unwrap().into_data().unwrap())
    }

    #[tokio::test]
    async fn events_arrive_as_they_are_sent_and_the_stream_ends_cleanly() {
        let (addr, tx, _dropped) = server().await;
        let res = get(addr, "/events", Some("text/event-stream")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(res.headers()[header::CONNECTION], "close", "answered here, not by hyper");
        assert_eq!(res.headers()[header::TRANSFER_ENCODING], "chunked");
        assert!(res.headers().contains_key(header::DATE));
        let mut body = res.into_body();
        // Each event reaches the client before the next is sent.
        for data in ["one", "two"] {
            tx.send(data).await.unwrap();
            assert_eq!(next_data(&mut body).await.unwrap(), format!("data: {data}\n\n"));
        }
        drop(tx);
        assert_eq!(next_data(&mut body).await, None, "the last chunk ends the body");
    }

    #[tokio::test]
    async fn a_client_that_leaves_an_idle_stream_ends_it_on_the_server() {
        let (addr, tx, dropped) = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n").await.unwrap();
        tx.send("hello").await.unwrap();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("data: hello") {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        drop(stream);
        tokio::time::timeout(Duration::from_secs(5), dropped).await.expect("the server dropped the stream").unwrap();
    }

    #[tokio::test]
    async fn other_answers_to_an_event_stream_request_are_framed_by_length() {
        let (addr, _tx, _dropped) = server().await;
        let res = get(addr, "/", Some("text/event-stream, */*")).await;
        assert_eq!(res.headers()[header::CONNECTION], "close");
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "2");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
        let res = get(addr, "/missing", Some("text/event-stream")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "0");
    }

    #[test]
    fn only_complete_bodiless_http11_gets_that_accept_events_are_taken() {
        let taken = |head: &str| parse(head.as_bytes()).map(|(len, req)| (len, req.uri().to_string()));
        let events = "GET /e?x=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
        assert_eq!(taken(events), Some((events.len(), "/e?x=1".to_owned())));
        assert!(taken(&format!("{events}GET / HTTP/1.1\r\n")).is_some(), "bytes after the head stay in the socket");
        for refused in [
            "GET /e HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /e HTTP/1.1\r\nAccept: application/json\r\n\r\n",
            "GET /e HTTP/1.1\r\nAccept: text/event-stream\r\n",
            "GET /e HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n",
            "POST /e HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 0\r\n\r\n",
            "GET /e HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 5\r\n\r\nhello",
            "GET /e HTTP/1.1\r\nAccept: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /e HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET /e HTTP/1.1\r\nAccept: text/event-stream\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(taken(refused).is_none(), "{refused:?}");
        }
    }

    #[tokio::test]
    async fn requests_without_accept_events_stay_with_hyper() {
        let (addr, _tx, _dropped) = server().await;
        let res = get(addr, "/", None).await;
        assert!(!res.headers().contains_key(header::CONNECTION), "hyper keeps the connection alive");
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
}
