//! Split deployment without `[upstreams]`: service instances announce themselves on RabbitMQ and
//! the gateway balances over the live ones.

use std::time::Duration;

use kit::testing::{Stack, TestInfra};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, base_config, client, spawn_process};

#[tokio::test]
async fn the_gateway_finds_auth_instances_and_drops_those_that_leave() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let config = base_config(&infra);
    assert!(config.upstreams.is_empty());
    let (mut first, _) = spawn_process(&infra, &config, "auth").await;
    let (_second, _) = spawn_process(&infra, &config, "auth").await;
    let (_gateway, url) = spawn_process(&infra, &config, "gateway").await;
    let http = client();

    // The gateway learns of the instances from their first heartbeats.
    let mut registered = None;
    for _ in 0..100 {
        let res = http
            .post(format!("{url}/api/auth/register"))
            .json(&json!({"username": "nora", "email": "nora@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::CREATED {
            registered = Some(res.json::<serde_json::Value>().await.unwrap());
            break;
        }
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "before discovery the route is unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = registered.expect("auth discovered")["access_token"].as_str().unwrap().to_owned();

    // One instance shuts down (announcing it leaves); every request still succeeds.
    let pid = first.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    first.wait().await.unwrap();
    for _ in 0..20 {
        let res = http.get(format!("{url}/api/auth/me")).bearer_auth(&token).send().await.unwrap();
        let status = res.status();
        assert_eq!(status, StatusCode::OK, "{}", res.text().await.unwrap());
    }
}
