//! Rate limits: per client IP on credential endpoints, per user when authenticated, shared by
//! every gateway replica through Redis.

use kit::ratelimit::Quota;
use kit::testing::{Stack, TestInfra};
use ollamanet::config::Urls;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{Deployment, Mode, base_config, client, spawn_process};

#[tokio::test]
async fn credential_endpoints_are_limited_per_ip_with_retry_after() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.gateway.rate_limits.classes.insert("credentials".into(), Quota { per_minute: 6, burst: 3 });
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let attempt = || {
        d.client.post(d.at("/api/auth/login")).json(&json!({"login": "nobody", "password": "wrong password"})).send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let res = attempt().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "rate_limited");
}

/// Two gateway processes share one Redis: a user's budget is one budget, not one per replica.
/// Stated tolerance: the quota refills one request per second, so a run lasting up to two
/// seconds may let two more through.
#[tokio::test]
async fn a_users_limit_holds_across_two_gateways_on_one_redis() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    const BURST: u32 = 10;
    config.gateway.rate_limits.authenticated = Quota { per_minute: 60, burst: BURST };
    let (_auth, auth_url) = spawn_process(&infra, &config, "auth").await;
    config.upstreams.insert("auth".into(), Urls(vec![auth_url]));
    let (_g1, url1) = spawn_process(&infra, &config, "gateway").await;
    let (_g2, url2) = spawn_process(&infra, &config, "gateway").await;

    let http = client();
    let reg = http
        .post(format!("{url1}/api/auth/register"))
        .json(&json!({"username": "dave", "email": "dave@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), StatusCode::CREATED);
    let token = reg.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();

    let started = std::time::Instant::now();
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..(3 * BURST) {
        let url = if i % 2 == 0 { &url1 } else { &url2 };
        let res = http.get(format!("{url}/api/auth/me")).bearer_auth(&token).send().await.unwrap();
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let refill = started.elapsed().as_secs() as u32 + 1;
    assert!(ok >= BURST && ok <= BURST + refill, "{ok} allowed across both gateways (burst {BURST}, refill {refill})");
    assert_eq!(ok + limited, 3 * BURST);
}

#[tokio::test]
async fn authenticated_requests_are_limited_per_user_not_per_ip() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.gateway.rate_limits.authenticated = Quota { per_minute: 60, burst: 3 };
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let a = d.user_token("erin").await;
    let b = d.user_token("frank").await;
    for _ in 0..3 {
        assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&a), None).await.0, StatusCode::OK);
    }
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&a), None).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        d.call(Method::GET, "/api/auth/me", Some(&b), None).await.0,
        StatusCode::OK,
        "another user from the same IP is unaffected"
    );
}

/// One IPv6 subscriber owns a whole /64 and can send from any of its 2^64 addresses: 200 of them
/// still share one anonymous budget, while the next /64 is another client with its own. The
/// addresses arrive the way a load balancer reports them (`X-Forwarded-For` from a trusted proxy).
#[tokio::test]
async fn addresses_of_one_ipv6_64_share_one_budget() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    const BURST: u32 = 20;
    // One request a minute on top of the burst: the budget does not refill while the test runs.
    config.gateway.rate_limits.anonymous = Quota { per_minute: 1, burst: BURST };
    config.gateway.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let from = |ip: String| d.client.get(d.at("/api/explore/models")).header("x-forwarded-for", ip).send();

    let mut ok = 0;
    for i in 0..200u32 {
        let status = from(format!("2001:db8:1:2:{:x}:{:x}::1", i >> 8, i & 0xff)).await.unwrap().status();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, BURST, "200 addresses in one /64 share one burst");
    assert_eq!(from("2001:db8:1:3::1".into()).await.unwrap().status(), StatusCode::OK, "another /64, another budget");
    assert_eq!(
        from("2001:db8:1:2:ffff::9".into()).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the first /64 is still spent"
    );
}
