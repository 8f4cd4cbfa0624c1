//! `gateway-floor LISTEN UPSTREAM`: forwards every request to UPSTREAM (`127.0.0.1:port`) with
//! the same server loop and client settings as the gateway, and nothing else.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::uri::{Authority, Scheme};
use http::{StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tower::ServiceExt;

#[derive(Clone)]
struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: Authority,
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(up.authority.clone());
    parts.uri = match Uri::from_parts(uri) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    parts.headers.remove(header::HOST);
    match up.client.request(Request::from_parts(parts, body)).await {
        Ok(res) => res.map(Body::new),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: gateway-floor LISTEN UPSTREAM");
        std::process::exit(2);
    };
    // As kit::upstream::http_client.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector);
    let up = Upstream { client, authority: upstream.parse().expect("UPSTREAM is host:port") };
    let app = Router::new().fallback(forward).with_state(up);

    // As kit::server::serve, without graceful shutdown.
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind LISTEN");
    println!("listening on {}", listener.local_addr().expect("local addr"));
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _peer)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            app.clone().oneshot(req.map(Body::new))
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
        });
    }
}
