use std::collections::HashSet;
use std::time::Duration;

use ollamanet_auth::AuthConfig;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{EventLog, PASSWORD, Session, TestApp, test_config};

#[tokio::test]
async fn register_login_me_refresh_logout_story() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;

    let login = app.login(&user.email, PASSWORD).await;
    assert_eq!(login.status, 200);
    let session = Session::from(&login);
    let me = app.me(&session.access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], session.user_id.to_string());
    assert_eq!(me.body["email"], user.email.as_str());

    let refreshed = app.refresh(&session.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let next = Session::from(&refreshed);
    assert_ne!(next.refresh, session.refresh, "refresh tokens rotate");
    assert_ne!(next.access, session.access);
    assert_eq!(app.me(&next.access).await.status, 200);

    let out = app.post("/api/auth/logout", &json!({"refresh_token": next.refresh})).await;
    assert_eq!(out.status, 204);
    let (cookie, attributes) = out.refresh_cookie().expect("the cookie is cleared");
    assert!(cookie.is_empty());
    assert!(attributes.contains(&"Max-Age=0".to_owned()));
    app.refresh(&next.refresh).await.assert_problem(401, "invalid_refresh_token");
}

#[tokio::test]
async fn the_cookie_alone_refreshes_and_logs_out() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let with_cookie = |token: &str| {
        app.request(Method::POST, "/api/auth/refresh")
            .header("cookie", format!("theme=dark; ollamanet_refresh={token}"))
    };

    let res = app.send(with_cookie(&session.refresh)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let (cookie, _) = res.refresh_cookie().expect("a new cookie");
    assert_eq!(cookie, res.body["refresh_token"].as_str().unwrap());

    let out = app
        .send(app.request(Method::POST, "/api/auth/logout").header("cookie", format!("ollamanet_refresh={cookie}")))
        .await;
    assert_eq!(out.status, 204);
    app.send(with_cookie(&cookie)).await.assert_problem(401, "invalid_refresh_token");
}

#[tokio::test]
async fn reusing_a_rotated_token_after_the_grace_window_revokes_the_whole_family() {
    let app = TestApp::with_config(AuthConfig { refresh_grace: Duration::ZERO, ..test_config() }).await;
    let (_, first) = app.new_user().await;
    let second = Session::from(&app.refresh(&first.refresh).await);
    let third = Session::from(&app.refresh(&second.refresh).await);

    // Someone presents an old token: it was stolen or replayed.
    app.refresh(&first.refresh).await.assert_problem(401, "refresh_token_reused");
    // The newest token of the family dies too, so the thief's copy is worthless.
    app.refresh(&third.refresh).await.assert_problem(401, "invalid_refresh_token");
    app.refresh(&second.refresh).await.assert_problem(401, "refresh_token_reused");
}

/// Several requests of one browser refresh with the same token at once: every one of them gets
/// the same next token, and the session goes on.
#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_its_successor() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;

    let attempts = (0..20).map(|_| app.refresh(&session.refresh));
    let results = futures::future::join_all(attempts).await;
    let answers: Vec<_> = results.iter().map(|r| (r.status, r.code().to_owned())).collect();
    assert!(results.iter().all(|r| r.status == 200), "{answers:?}");
    let successors: HashSet<&str> = results.iter().map(|r| r.body["refresh_token"].as_str().unwrap()).collect();
    assert_eq!(successors.len(), 1, "one successor: {successors:?}");
    let successor = successors.into_iter().next().unwrap();
    assert_ne!(successor, session.refresh);
    for r in &results {
        assert_eq!(app.me(r.body["access_token"].as_str().unwrap()).await.status, 200);
        assert_eq!(r.refresh_cookie().map(|c| c.0).as_deref(), Some(successor));
    }
    assert_eq!(app.refresh(successor).await.status, 200, "the session goes on");
}

/// Within the grace window an old token leads to the newest one of its session, never past its
/// end: a session that was signed out stays signed out.
#[tokio::test]
async fn within_the_grace_window_an_old_token_gets_the_newest_and_nothing_more() {
    let app = TestApp::spawn().await;
    let (_, first) = app.new_user().await;
    let second = Session::from(&app.refresh(&first.refresh).await);
    let third = Session::from(&app.refresh(&second.refresh).await);
    let again = app.refresh(&first.refresh).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["refresh_token"], third.refresh.as_str());

    assert_eq!(app.post("/api/auth/logout", &json!({"refresh_token": third.refresh})).await.status, 204);
    for old in [&first, &second, &third] {
        let res = app.refresh(&old.refresh).await;
        assert_eq!(res.status, 401, "{}", res.text);
    }
}

#[tokio::test]
async fn unknown_or_missing_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.refresh("onr_not-a-real-token").await.assert_problem(401, "invalid_refresh_token");
    app.post("/api/auth/refresh", &json!({})).await.assert_problem(401, "invalid_refresh_token");
    app.send(app.request(Method::POST, "/api/auth/refresh")).await.assert_problem(401, "invalid_refresh_token");
}

#[tokio::test]
async fn logout_all_ends_every_session_and_access_token() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let (user, phone) = app.new_user().await;
    let laptop = Session::from(&app.login(&user.username, PASSWORD).await);
    assert_eq!(app.me(&phone.access).await.status, 200);

    let res = app.call(Method::POST, "/api/auth/logout", &laptop.access, Some(&json!({"all": true}))).await;
    assert_eq!(res.status, 204, "{}", res.text);

    for session in [&phone, &laptop] {
        app.me(&session.access).await.assert_problem(401, "token_revoked");
        app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");
    }
    let event = events.expect(|e| e.kind == "user.updated").await;
    assert_eq!(event.data, json!({"user_id": phone.user_id, "token_version": 1}));
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "logging in again works");
}

#[tokio::test]
async fn logout_all_needs_an_access_token() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    app.post("/api/auth/logout", &json!({"all": true})).await.assert_problem(401, "unauthenticated");
    assert_eq!(app.refresh(&session.refresh).await.status, 200, "nothing was revoked");
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    app.sql("UPDATE refresh_tokens SET expires_at = created_at WHERE user_id = $1", session.user_id).await;
    app.refresh(&session.refresh).await.assert_problem(401, "refresh_token_expired");
}
