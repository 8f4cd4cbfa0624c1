use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Session, TestApp, reset_token};

const NEW_PASSWORD: &str = "an entirely new secret phrase";

#[tokio::test]
async fn changing_the_password_kills_old_tokens_at_once() {
    let app = TestApp::spawn().await;
    let (user, old) = app.new_user().await;
    let other_device = Session::from(&app.login(&user.username, PASSWORD).await);
    assert_eq!(app.me(&old.access).await.status, 200, "the old token works (and its state is cached)");

    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let res = app.call(Method::POST, "/api/auth/password/change", &old.access, Some(&body)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let fresh = Session::from(&res);

    for stale in [&old, &other_device] {
        app.me(&stale.access).await.assert_problem(401, "token_revoked");
        app.refresh(&stale.refresh).await.assert_problem(401, "invalid_refresh_token");
    }
    assert_eq!(app.me(&fresh.access).await.status, 200);
    assert_eq!(app.refresh(&fresh.refresh).await.status, 200);
    app.login(&user.username, PASSWORD).await.assert_problem(401, "invalid_credentials");
    assert_eq!(app.login(&user.username, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_the_policy() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    let (app, access) = (&app, &session.access);
    let change = move |body: serde_json::Value| async move {
        app.call(Method::POST, "/api/auth/password/change", access, Some(&body)).await
    };

    change(json!({"current_password": "wrong password x", "new_password": NEW_PASSWORD}))
        .await
        .assert_problem(403, "invalid_current_password");
    let res = change(json!({"current_password": PASSWORD, "new_password": "password1234"})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.field_errors(), vec![("new_password".to_owned(), "password_too_common".to_owned())]);
    let res = change(json!({"current_password": PASSWORD, "new_password": format!("{} rocks", user.username)})).await;
    assert_eq!(res.field_errors(), vec![("new_password".to_owned(), "password_contains_identity".to_owned())]);
    assert_eq!(app.me(&session.access).await.status, 200, "failed attempts change nothing");
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_mails_only_real_ones() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;

    let unknown = app.post("/api/auth/password/forgot", &json!({"email": "nobody@example.org"})).await;
    let known = app.post("/api/auth/password/forgot", &json!({"email": user.email.to_uppercase()})).await;
    for res in [&unknown, &known] {
        assert_eq!(res.status, 202);
        assert_eq!(res.body, json!({"status": "accepted"}));
    }
    assert_eq!(unknown.headers.len(), known.headers.len());

    let mail = app.mailer.wait_for(&user.email).await;
    assert_eq!(app.mailer.sent().len(), 1, "no mail for the unknown address");
    let token = reset_token(&mail.body);
    assert!(token.len() >= 43, "{token}");
    assert!(!known.text.contains(&token) && !known.headers.iter().any(|(_, v)| v.as_bytes() == token.as_bytes()));
}

#[tokio::test]
async fn a_reset_token_works_once_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    // Fail sign-ins first: the reset must lift the wait they impose.
    for _ in 0..3 {
        app.login(&user.username, "wrong password here").await;
    }
    app.login(&user.username, PASSWORD).await.assert_problem(429, "login_throttled");

    app.post("/api/auth/password/forgot", &json!({"email": user.email})).await;
    let token = reset_token(&app.mailer.wait_for(&user.email).await.body);

    let weak = app.post("/api/auth/password/reset", &json!({"token": token, "new_password": "short"})).await;
    assert_eq!(weak.field_errors(), vec![("new_password".to_owned(), "password_too_short".to_owned())]);

    let reset = json!({"token": token, "new_password": NEW_PASSWORD});
    let res = app.post("/api/auth/password/reset", &reset).await;
    assert_eq!(res.status, 204, "{}", res.text);
    app.post("/api/auth/password/reset", &reset).await.assert_problem(400, "invalid_reset_token");

    app.me(&session.access).await.assert_problem(401, "token_revoked");
    app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");
    app.login(&user.username, PASSWORD).await.assert_problem(401, "invalid_credentials");
    assert_eq!(app.login(&user.username, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn unknown_reset_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let res = app.post("/api/auth/password/reset", &json!({"token": "made-up", "new_password": NEW_PASSWORD})).await;
    res.assert_problem(400, "invalid_reset_token");
}

#[tokio::test]
async fn expired_reset_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    app.post("/api/auth/password/forgot", &json!({"email": user.email})).await;
    let token = reset_token(&app.mailer.wait_for(&user.email).await.body);
    app.sql("UPDATE password_resets SET expires_at = created_at WHERE user_id = $1", session.user_id).await;

    let res = app.post("/api/auth/password/reset", &json!({"token": token, "new_password": NEW_PASSWORD})).await;
    res.assert_problem(400, "invalid_reset_token");
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "the password is unchanged");
}
