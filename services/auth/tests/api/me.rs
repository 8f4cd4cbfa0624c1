use reqwest::Method;
use serde_json::json;

use crate::helpers::{EventLog, PASSWORD, TestApp};

#[tokio::test]
async fn me_needs_a_credential() {
    let app = TestApp::spawn().await;
    let res = app.send(app.request(Method::GET, "/api/auth/me")).await;
    res.assert_problem(401, "unauthenticated");
    assert_eq!(res.header("www-authenticate"), Some("Bearer realm=\"ollamanet\""));
    app.me("not.a.jwt").await.assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn username_changes_and_is_announced() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let (_, session) = app.new_user().await;

    let res = app.call(Method::PATCH, "/api/auth/me", &session.access, Some(&json!({"username": "Renamed.One"}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["username"], "Renamed.One");
    assert_eq!(app.me(&session.access).await.body["username"], "Renamed.One");
    assert_eq!(app.login("renamed.one", PASSWORD).await.status, 200);
    let event = events.expect(|e| e.kind == "user.updated").await;
    assert_eq!(event.data["user_id"], session.user_id.to_string());
}

#[tokio::test]
async fn changing_the_email_needs_the_current_password() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let (app, access) = (&app, &session.access);
    let patch = move |body: serde_json::Value| async move {
        app.call(Method::PATCH, "/api/auth/me", access, Some(&body)).await
    };

    let res = patch(json!({"email": "moved@example.org"})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.field_errors(), vec![("current_password".to_owned(), "required".to_owned())]);

    patch(json!({"email": "moved@example.org", "current_password": "wrong password x"}))
        .await
        .assert_problem(403, "invalid_current_password");

    let res = patch(json!({"email": "Moved@Example.org", "current_password": PASSWORD})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["email"], "moved@example.org");
    assert_eq!(app.login("moved@example.org", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn profile_changes_keep_usernames_and_emails_unique() {
    let app = TestApp::spawn().await;
    let (other, _) = app.new_user().await;
    let (_, session) = app.new_user().await;
    let (app, access) = (&app, &session.access);
    let patch = move |body: serde_json::Value| async move {
        app.call(Method::PATCH, "/api/auth/me", access, Some(&body)).await
    };

    patch(json!({"username": other.username.to_uppercase()})).await.assert_problem(409, "username_taken");
    patch(json!({"email": other.email, "current_password": PASSWORD})).await.assert_problem(409, "email_taken");
    let res = patch(json!({"username": "x"})).await;
    assert_eq!(res.field_errors(), vec![("username".to_owned(), "invalid_length".to_owned())]);
}

#[tokio::test]
async fn roles_cannot_be_set_through_the_profile() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let res = app.call(Method::PATCH, "/api/auth/me", &session.access, Some(&json!({"roles": ["Admin"]}))).await;
    res.assert_problem(422, "invalid_body");
    assert_eq!(res.field_errors(), vec![("roles".to_owned(), "unknown_field".to_owned())]);
    assert_eq!(app.me(&session.access).await.body["roles"], json!(["User"]));
}
