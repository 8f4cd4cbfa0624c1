//! Every way of composing a process (`serve --only …`): each of the 255 non-empty sets of the eight
//! services either starts and serves every service it names, or is refused with a clear reason.
//! None panics (two services' routers once could not be merged), and none puts the engine's API
//! on a listener beside other services.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kit::testing::TestInfra;
use ollamanet::app::{App, Options, Service};
use ollamanet::config::{AppConfig, Urls};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Deployment, base_config, client};

/// The one reason a set of services is refused when every upstream it needs is configured.
const ENGINE_APART: &str = "the engine's API never shares a listener with other services";

fn subset(mask: u32) -> Vec<Service> {
    Service::ALL.into_iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| s).collect()
}

fn names(services: &[Service]) -> String {
    services.iter().map(|s| s.name()).collect::<Vec<_>>().join(",")
}

/// A process whose services are `services` on `config`: its outcome, or why it is wrong.
async fn try_combination(config: &AppConfig, services: &[Service], user: &str, admin: &str) -> Result<Outcome, String> {
    let built = std::panic::AssertUnwindSafe(App::build(config, services, Options::default())).catch_unwind().await;
    let app = match built {
        Err(panic) => {
            let why =
                panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            return Err(format!("panicked: {}", why.unwrap_or_default()));
        }
        Ok(Err(e)) => return Ok(Outcome::Refused(format!("{e:#}"))),
        Ok(Ok(app)) => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = app.shutdown.clone();
    let server = tokio::spawn(app.serve(listener, kit::server::ServeOptions::default()));
    let result = probe_every_service(&url, services, user, admin).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server).await.map_err(|_| "did not stop".to_owned())?.unwrap();
    result.map(|()| Outcome::Served)
}

enum Outcome {
    Served,
    Refused(String),
}

async fn get(url: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().request(Method::GET, format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// `/health`, then one route of each service in the process (through the gateway when it is one
/// of them: the gateway forwards paths unchanged).
async fn probe_every_service(url: &str, services: &[Service], user: &str, admin: &str) -> Result<(), String> {
    let (status, health) = get(url, "/health", None).await;
    if status != StatusCode::OK {
        return Err(format!("/health: {status} {health}"));
    }
    let engine_alone = services == [Service::Engine];
    for service in services {
        let (path, token) = match service {
            Service::Gateway => {
                if health["service"] != "gateway" {
                    return Err(format!("the gateway is not in front: {health}"));
                }
                continue;
            }
            Service::Auth => ("/api/auth/.well-known/jwks.json", None),
            Service::Admin => ("/api/admin/models", Some(admin)),
            Service::Explore => ("/api/explore/models", None),
            Service::Conversation => ("/api/conversations", Some(user)),
            Service::Inference => ("/ollama/api/tags", Some(user)),
            Service::Engine if engine_alone => ("/api/tags", None),
            // Beside inference the engine is one of its nodes, called in-process.
            Service::Engine => ("/api/admin/engines/local", Some(admin)),
            Service::Web => ("/login", None),
        };
        let (status, body) = get(url, path, token).await;
        if status != StatusCode::OK {
            return Err(format!("{service}: GET {path}: {status} {body}"));
        }
    }
    if services.contains(&Service::Engine) && !engine_alone {
        // The engine's own routes are not on this listener.
        for path in ["/api/tags", "/api/ps", "/api/version"] {
            let (status, body) = get(url, path, None).await;
            if status != StatusCode::NOT_FOUND {
                return Err(format!("the engine's {path} is on the listener: {status} {body}"));
            }
        }
    }
    Ok(())
}

/// All 255 combinations, one after the other in this process. Auth and inference also run
/// elsewhere, so that a combination without them finds them as a split deployment would.
#[tokio::test]
async fn every_combination_of_services_starts_or_is_refused_clearly() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(1);
    let elsewhere = Deployment::in_process_with(infra, config.clone(), &[Service::Auth, Service::Inference]).await;
    let user = elsewhere.user_token("combo").await;
    let admin = elsewhere.admin_token("comboadmin").await;
    for service in ["auth", "inference"] {
        config.upstreams.insert(service.into(), Urls(vec![elsewhere.url.clone()]));
    }

    // Every service at once first, alone: it creates every database, which concurrent starts on
    // one SQLite file would race to do. Then the others, several at a time: most of a start is
    // waiting for the database and the broker.
    let all = (1u32 << Service::ALL.len()) - 1;
    let mut outcomes = vec![(subset(all), try_combination(&config, &subset(all), &user, &admin).await)];
    let others: Vec<(Vec<Service>, Result<Outcome, String>)> = futures::stream::iter((1..all).map(subset))
        .map(|services| {
            let (config, user, admin) = (&config, &user, &admin);
            async move {
                let outcome = try_combination(config, &services, user, admin).await;
                (services, outcome)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    outcomes.extend(others);
    let mut wrong = Vec::new();
    let (mut served, mut refused) = (0, 0);
    for (services, outcome) in outcomes {
        let refusal_expected =
            services.contains(&Service::Engine) && services.len() > 1 && !services.contains(&Service::Inference);
        match outcome {
            Ok(Outcome::Served) if !refusal_expected => served += 1,
            Ok(Outcome::Refused(why)) if refusal_expected && why.contains(ENGINE_APART) => refused += 1,
            Ok(Outcome::Served) => {
                wrong.push(format!("{}: started with the engine beside other services", names(&services)))
            }
            Ok(Outcome::Refused(why)) => wrong.push(format!("{}: refused: {why}", names(&services))),
            Err(e) => wrong.push(format!("{}: {e}", names(&services))),
        }
    }
    assert!(wrong.is_empty(), "{} combination(s) failed:\n{}", wrong.len(), wrong.join("\n"));
    // The engine beside other services but no inference: 2^6 - 1 sets.
    assert_eq!((served, refused), (255 - 63, 63));
}
