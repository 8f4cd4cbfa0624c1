//! Operational endpoints: health, readiness, metrics, the merged OpenAPI document and docs page.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Deployment, Mode, OPS_TOKEN};

async fn ops(mode: Mode) {
    let d = Deployment::start(mode).await;
    let health: Value = d.client.get(d.at("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let res = d.client.get(d.at("/ready")).bearer_auth(OPS_TOKEN).send().await.unwrap();
    let status = res.status();
    let ready: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    if mode == Mode::AllInOne {
        assert_eq!(ready["checks"]["auth.database"]["status"], "up", "{ready}");
    }

    d.register("olive").await;
    let metrics = d.metrics().await;
    assert!(metrics.contains("gateway_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/auth/register\""), "{metrics}");

    let doc: Value = d.client.get(d.at("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/api/auth/register", "/api/auth/login", "/api/auth/me", "/api/auth/keys/{id}"] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    assert!(!paths.contains_key("/api/auth/introspect"), "internal endpoints stay out of the public document");

    let res = d.client.get(d.at("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("<html") || page.contains("<!DOCTYPE"), "docs page is HTML");
    assert!(!page.contains("://cdn") && !page.contains("unpkg.com"), "docs page needs no network");
}

#[tokio::test]
async fn ops_endpoints_all_in_one() {
    ops(Mode::AllInOne).await;
}

#[tokio::test]
async fn ops_endpoints_split() {
    ops(Mode::Split).await;
}

#[tokio::test]
async fn the_root_is_the_web_application_and_the_documentation_stays_at_docs() {
    let d = Deployment::start(Mode::AllInOne).await;
    kit::tls::install_crypto_provider();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client.get(d.at("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a visitor who is not signed in is sent to sign in");
    assert_eq!(res.headers()["location"], "/login");
    assert_eq!(client.get(d.at("/docs/")).send().await.unwrap().status(), StatusCode::OK);
}

/// Metrics name routes, models and engines, and readiness checks name backends and the errors
/// they give: a stranger, or a signed-in user, reads neither; a probe still learns the status.
#[tokio::test]
async fn metrics_and_readiness_details_need_the_ops_token() {
    for mode in [Mode::AllInOne, Mode::Split] {
        let d = Deployment::start(mode).await;
        let user = d.user_token("mallory").await;
        for credential in [None, Some(user.as_str()), Some("test-ops-token-but-wrong")] {
            let mut req = d.client.get(d.at("/metrics"));
            if let Some(c) = credential {
                req = req.bearer_auth(c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{mode:?} {credential:?}");
            assert!(res.headers().contains_key("www-authenticate"));
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["code"], "ops_token_required");

            let mut req = d.client.get(d.at("/ready"));
            if let Some(c) = credential {
                req = req.bearer_auth(c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let ready: Value = res.json().await.unwrap();
            assert_eq!(ready, serde_json::json!({"status": "ready"}), "{mode:?}: the status and nothing else");
        }
        assert!(d.metrics().await.contains("gateway_requests_total"), "{mode:?}: the operator reads them");
    }
}
