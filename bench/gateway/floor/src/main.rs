//! `gateway-floor LISTEN UPSTREAM`: forwards every request to UPSTREAM (`http://127.0.0.1:port`)
//! through the same server loop and upstream client as the gateway, and nothing else.

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use kit::upstream::Upstream;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: gateway-floor LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let upstream = Upstream::http(&[upstream]).expect("UPSTREAM is an http:// URL");
    let app = Router::new().fallback(move |req: Request| {
        let upstream = upstream.clone();
        async move { upstream.call(req).await.map_err(|e| e.into_problem("upstream")).into_response() }
    });
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind LISTEN");
    println!("listening on {}", listener.local_addr().expect("local addr"));
    kit::server::serve(listener, app, Default::default(), Default::default()).await;
}
