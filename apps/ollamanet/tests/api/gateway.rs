//! Gateway behaviour that needs a service behind it to observe what arrives there. The service
//! is `echo`, a test double standing for any upstream service: it reflects what it received.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::{any, get};
use futures::StreamExt;
use kit::testing::TestInfra;
use ollamanet::config::{AppConfig, Urls};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::{Deployment, Mode, base_config};

const ECHO_ROUTES: &str = r#"
[[route]]
path = "/echo/open/{*rest}"
service = "echo"
auth = "anonymous"

[[route]]
path = "/echo/user/{*rest}"
service = "echo"
upstream = "/reflect/{rest}"

[[route]]
path = "/echo/stream"
service = "echo"
auth = "anonymous"

[[route]]
path = "/echo/slow"
service = "echo"
auth = "anonymous"
timeout = "1s"

[[route]]
path = "/gone/{*rest}"
service = "nowhere"
auth = "anonymous"
"#;

struct Echo {
    url: String,
    /// Released by the test to let the stream send its second event.
    release: Arc<Notify>,
}

async fn reflect(req: Request) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
        .collect();
    axum::Json(
        json!({"method": req.method().as_str(), "path": req.uri().path(), "query": req.uri().query(), "headers": headers}),
    )
}

async fn start_echo() -> Echo {
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let app = Router::new()
        .route("/reflect/{*rest}", any(reflect))
        .route("/echo/open/{*rest}", any(reflect))
        .route(
            "/echo/stream",
            get(move || {
                let r = r.clone();
                async move {
                    let events = futures::stream::once(async { Ok::<_, std::io::Error>("data: first\n\n") }).chain(
                        futures::stream::once(async move {
                            r.notified().await;
                            Ok("data: second\n\n")
                        }),
                    );
                    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(events))
                }
            }),
        )
        .route(
            "/echo/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(kit::server::serve(listener, app, Default::default(), Default::default()));
    Echo { url, release }
}

fn with_echo(infra: &TestInfra, echo: &Echo) -> AppConfig {
    let mut config = base_config(infra);
    let file = infra.data_dir().join("routes.toml");
    std::fs::write(&file, format!("{}\n{ECHO_ROUTES}", ollamanet_gateway::DEFAULT_ROUTES)).unwrap();
    config.gateway.routes_file = Some(file);
    config.gateway.reload_interval = Duration::from_millis(100);
    config.upstreams.insert("echo".into(), Urls(vec![echo.url.clone()]));
    config
}

async fn echo_deployment(mode: Mode) -> (Deployment, Echo) {
    let echo = start_echo().await;
    let infra = TestInfra::new().await;
    let config = with_echo(&infra, &echo);
    (Deployment::start_with(mode, infra, config).await, echo)
}

#[tokio::test]
async fn forwards_identity_and_strips_what_clients_must_not_set() {
    let (d, _echo) = echo_deployment(Mode::AllInOne).await;
    let registered = d.register("gina").await;
    let token = registered["access_token"].as_str().unwrap();

    let res = d
        .client
        .get(d.at("/echo/user/a/b?x=1"))
        .bearer_auth(token)
        .header("x-user-id", "00000000-0000-0000-0000-000000000000")
        .header("x-user-roles", "Admin")
        .header("x-request-id", "req-42")
        .header(header::CONNECTION, "x-private")
        .header("x-private", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen["path"], "/reflect/a/b", "upstream template applied");
    assert_eq!(seen["query"], "x=1");
    let h = &seen["headers"];
    assert_eq!(h["x-user-id"], registered["user"]["id"], "the gateway's identity, not the client's");
    assert_eq!(h["x-user-roles"], "User");
    assert_eq!(h["x-user-email"], "gina@example.com");
    assert_eq!(h["x-request-id"], "req-42");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(h["x-forwarded-host"].as_str().is_some_and(|v| v.starts_with("127.0.0.1:")));
    assert!(h.get("x-private").is_none(), "headers named in Connection are hop-by-hop");

    // Anonymous route: client identity headers are dropped, none are added.
    let seen: Value =
        d.client.get(d.at("/echo/open/x")).header("x-user-id", "forged").send().await.unwrap().json().await.unwrap();
    assert!(seen["headers"].get("x-user-id").is_none(), "{seen}");

    // Authenticated route without credentials never reaches the upstream.
    let (status, _) = d.call(Method::GET, "/echo/user/x", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn streams_responses_without_buffering() {
    let (d, echo) = echo_deployment(Mode::AllInOne).await;
    let res = d.client.get(d.at("/echo/stream")).send().await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.bytes_stream();
    // The upstream sends its second event only after we have received the first: a buffering
    // gateway would deadlock here.
    let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("first event arrives alone");
    assert_eq!(first.unwrap().unwrap(), "data: first\n\n");
    echo.release.notify_one();
    let second = tokio::time::timeout(Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second, "data: second\n\n");
}

#[tokio::test]
async fn upstream_failures_become_problems() {
    let (d, _echo) = echo_deployment(Mode::AllInOne).await;
    let (status, body) = d.call(Method::GET, "/echo/slow", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("upstream_timeout")));
    let (status, body) = d.call(Method::GET, "/gone/x", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("upstream_unavailable")));
}

#[tokio::test]
async fn route_table_reloads_without_dropping_requests() {
    let (d, _echo) = echo_deployment(Mode::AllInOne).await;
    let file = d.config.gateway.routes_file.clone().unwrap();
    let d = Arc::new(d);

    // Traffic on an existing route while the table is rewritten several times.
    let traffic = {
        let d = d.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..200 {
                statuses.push(d.client.get(d.at("/echo/open/steady")).send().await.unwrap().status());
            }
            statuses
        })
    };
    let base = std::fs::read_to_string(&file).unwrap();
    for i in 0..5 {
        let extra = format!(
            "\n[[route]]\npath = \"/echo/new{i}/{{*rest}}\"\nservice = \"echo\"\nauth = \"anonymous\"\nupstream = \"/reflect/{{rest}}\"\n"
        );
        std::fs::write(&file, format!("{base}{extra}")).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let statuses = traffic.await.unwrap();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "no request dropped during reloads: {statuses:?}");
    wait_for_status(&d, "/echo/new4/x", StatusCode::OK).await;

    // A broken file is ignored: the table in force stays.
    std::fs::write(&file, "this is [not toml").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.call(Method::GET, "/echo/new4/x", None, None).await.0, StatusCode::OK);
}

async fn wait_for_status(d: &Deployment, path: &str, want: StatusCode) {
    for _ in 0..100 {
        if d.call(Method::GET, path, None, None).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered {want}");
}

#[tokio::test]
async fn cors_allows_listed_origins_only_with_credentials() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.gateway.cors.allowed_origins = vec!["https://chat.example.com".into()];
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let preflight = |origin: &'static str| {
        d.client
            .request(reqwest::Method::OPTIONS, d.at("/api/auth/me"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
            .send()
    };
    let res = preflight("https://chat.example.com").await.unwrap();
    let h = res.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://chat.example.com");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert!(h[header::ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().contains("PATCH"));

    let res = preflight("https://evil.example.net").await.unwrap();
    assert!(res.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn split_gateway_proxies_over_http() {
    let (d, echo) = echo_deployment(Mode::Split).await;
    let token = d.user_token("hank").await;
    let seen: Value =
        d.client.get(d.at("/echo/user/z")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["headers"]["x-user-email"], "hank@example.com");
    let res = d.client.get(d.at("/echo/stream")).send().await.unwrap();
    let mut body = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("streamed over HTTP too");
    assert_eq!(first.unwrap().unwrap(), "data: first\n\n");
    echo.release.notify_one();
}
