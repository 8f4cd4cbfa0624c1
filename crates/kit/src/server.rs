//! The HTTP server loop: HTTP/1.1 and HTTP/2, a header-read timeout against slow clients, idle
//! connections closed, the peer address for rate limiting, and graceful shutdown that lets
//! in-flight requests (and streams) finish for a bounded time.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::DerefMut;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

mod event_stream;

/// How a process serves its connections (`[server]` in the configuration file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// After a shutdown signal, how long requests under way (replies streaming, uploads being
    /// read) get to finish; then the connections still open are dropped and the process exits.
    #[serde(with = "crate::config::duration")]
    pub shutdown_grace: Duration,
    /// An HTTP/2 connection with no request under way for this long is closed. (HTTP/1.1: a
    /// connection waiting for its next request is closed after `gateway.header_read_timeout`.)
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// HTTP/2 pings a silent peer this often, and drops it when a ping goes unanswered as long.
    #[serde(with = "crate::config::duration")]
    pub keep_alive_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            keep_alive_interval: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            ("shutdown_grace", self.shutdown_grace),
            ("idle_timeout", self.idle_timeout),
            ("keep_alive_interval", self.keep_alive_interval),
        ] {
            if value.is_zero() {
                return Err(format!("server.{key} must be positive"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A client must send its complete request head within this time (which also ends an
    /// HTTP/1.1 connection idle between requests: hyper starts the clock when it waits for a head).
    pub header_read_timeout: Duration,
    /// After shutdown starts, open connections get this long to finish.
    pub drain_timeout: Duration,
    /// An HTTP/2 connection without a request under way is closed after this long.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive pings, and how long one may go unanswered.
    pub keep_alive_interval: Duration,
}

impl ServeOptions {
    pub fn new(config: &ServerConfig, header_read_timeout: Duration) -> Self {
        Self {
            header_read_timeout,
            drain_timeout: config.shutdown_grace,
            idle_timeout: config.idle_timeout,
            keep_alive_interval: config.keep_alive_interval,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::new(&ServerConfig::default(), Duration::from_secs(10))
    }
}

/// Any HTTP service a process can serve: an axum `Router`, or a hand-built front service.
pub type HttpService = tower::util::BoxCloneSyncService<http::Request<Body>, axum::response::Response, Infallible>;

/// The first bytes of every HTTP/2 connection without TLS ("prior knowledge").
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
///
/// Each connection is HTTP/1.1 or, when it opens with the HTTP/2 preface, HTTP/2. The protocol
/// is told by peeking at the first bytes (nothing is consumed), and each connection task holds
/// only the state of its own protocol: a task that could become either (hyper_util's `auto`
/// connection) is as large as an HTTP/2 connection (a 3.5 KiB task instead of 1.3), and its
/// re-reading of the sniffed bytes makes hyper's HTTP/1 read buffer grow from 8 to 16 KiB: an
/// idle reply stream costs a third less memory this way (docs/performance.md, "Conversation").
/// The first bytes must come within the header-read timeout too. An HTTP/1.1 request for an event
/// stream is answered without hyper ([`event_stream`]), so that an idle stream does not hold
/// hyper's connection buffers.
pub async fn serve<S>(listener: TcpListener, app: S, shutdown: CancellationToken, opts: ServeOptions)
where
    S: Service<http::Request<Body>, Response = axum::response::Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new()).header_read_timeout(opts.header_read_timeout).max_buf_size(64 * 1024);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(opts.keep_alive_interval))
        .keep_alive_timeout(opts.keep_alive_interval);
    let builders = Arc::new((h1, h2));
    // Shutdown is sent to every connection task through this; each holds a receiver until its
    // connection has ended, so the sender sees when all have drained.
    let (drain, _) = watch::channel(());

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        // Subscribed here, not in the task: a shutdown sent before the task starts is still seen.
        let mut drained = drain.subscribe();
        let builders = builders.clone();
        let (header_read_timeout, idle_timeout) = (opts.header_read_timeout, opts.idle_timeout);
        tokio::spawn(async move {
            // The request head's time limit covers the bytes that tell the protocol.
            let is_h2 = tokio::select! {
                sniffed = tokio::time::timeout(header_read_timeout, is_h2(&stream)) => match sniffed {
                    Ok(Ok(is_h2)) => is_h2,
                    Ok(Err(_)) | Err(_) => return,
                },
                _ = drained.changed() => return,
            };
            if !is_h2 {
                match event_stream::peek(&stream, peer).await {
                    // `drained` is held until this ends, as for any connection: shutdown waits for
                    // the stream within the drain timeout.
                    Ok(Some(request)) => {
                        if let Err(e) = event_stream::serve(stream, request, app).await {
                            tracing::debug!(%peer, error = %e, "event stream ended with an error");
                        }
                        return;
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
            let (h1, h2) = &*builders;
            let result = if is_h2 {
                // Requests under way on this connection, for its idle timeout.
                let activity = Arc::new(Activity::default());
                let tracked = activity.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let under_way = UnderWay::start(&tracked);
                    let response = app.clone().oneshot(req);
                    async move {
                        let response = response.await?;
                        // The request is under way until its body has been sent (a stream of
                        // events is a request under way).
                        Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _under_way: under_way })))
                    }
                });
                // Boxed, so that HTTP/1 connections do not carry its size.
                let conn = Box::pin(h2.serve_connection(TokioIo::new(stream), service));
                until_drained(conn, |c| c.graceful_shutdown(), drained, activity.idle_for(idle_timeout)).await
            } else {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req)
                });
                let conn = std::pin::pin!(h1.serve_connection(TokioIo::new(stream), service).with_upgrades());
                until_drained(conn, |c| c.graceful_shutdown(), drained, std::future::pending()).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let _ = drain.send(());
    tokio::select! {
        _ = drain.closed() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(opts.drain_timeout) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}

/// Drives a connection to its end; when `drained` says the server is shutting down, or `idle`
/// ends, asks it to finish what it is doing (`stop`: hyper's `graceful_shutdown`) and waits for
/// that.
async fn until_drained<C, P>(
    mut conn: Pin<P>,
    stop: fn(Pin<&mut C>),
    mut drained: watch::Receiver<()>,
    idle: impl Future<Output = ()>,
) -> C::Output
where
    P: DerefMut<Target = C>,
    C: Future,
{
    tokio::select! {
        ended = conn.as_mut() => return ended,
        _ = drained.changed() => stop(conn.as_mut()),
        () = idle => stop(conn.as_mut()),
    }
    conn.await
}

/// The requests under way on one connection.
#[derive(Default)]
struct Activity {
    under_way: AtomicUsize,
    changed: Notify,
}

impl Activity {
    /// Ends once no request has been under way for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            // Made before the count is read, so that a change after the read still wakes it.
            let changed = self.changed.notified();
            if self.under_way.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request under way, from its head until its response body has been sent or dropped.
struct UnderWay(Arc<Activity>);

impl UnderWay {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.under_way.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_waiters();
        Self(activity.clone())
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A response body that keeps its request counted as under way.
struct Tracked {
    body: Body,
    _under_way: UnderWay,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether the connection opens with the HTTP/2 preface, by peeking (the bytes stay for hyper).
/// HTTP/1 is told by its first byte or two; a client that closes before sending anything is
/// handed to HTTP/1, which closes the connection.
async fn is_h2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface so far; peeking again would return at once with the same bytes.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The peer address, if the request came through [`serve`].
pub fn peer_addr(req: &http::request::Parts) -> Option<SocketAddr> {
    req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// Cancels the token on SIGINT or SIGTERM.
pub fn shutdown_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown signal received; draining");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves a router answering `/` with "ok"; its address and the shutdown token.
    async fn server(opts: ServeOptions) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, app, shutdown.clone(), opts));
        (addr, shutdown, task)
    }

    async fn get(client: &Client<HttpConnector, Empty<bytes::Bytes>>, addr: SocketAddr) -> (http::Version, String) {
        let res = client.get(format!("http://{addr}/").parse().unwrap()).await.unwrap();
        let version = res.version();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (version, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn speaks_http1_and_http2_with_prior_knowledge() {
        let (addr, _shutdown, _task) = server(ServeOptions::default()).await;
        let h1 = Client::builder(TokioExecutor::new()).build_http();
        assert_eq!(get(&h1, addr).await, (http::Version::HTTP_11, "ok".to_owned()));
        let h2 = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
        assert_eq!(get(&h2, addr).await, (http::Version::HTTP_2, "ok".to_owned()));
    }

    /// A client that sends part of the HTTP/2 preface, part of a request head, or nothing, is cut
    /// off after the header-read timeout.
    #[tokio::test]
    async fn a_silent_or_stalled_client_is_disconnected() {
        let opts = ServeOptions { header_read_timeout: Duration::from_millis(300), ..Default::default() };
        let (addr, _shutdown, _task) = server(opts).await;
        for sent in [&b""[..], b"PRI * HTTP/2.0\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n"] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(sent).await.unwrap();
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(closed.is_ok(), "still open after {:?}", String::from_utf8_lossy(sent));
        }
    }

    #[tokio::test]
    async fn shutdown_drains_idle_connections_at_once() {
        let (addr, shutdown, task) = server(ServeOptions::default()).await;
        let h1 = Client::builder(TokioExecutor::new()).build_http();
        assert_eq!(get(&h1, addr).await.1, "ok");
        // The client keeps its connection open; shutdown must not wait the drain timeout for it.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("drained in time").unwrap();
    }
}
