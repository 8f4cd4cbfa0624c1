use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Session, TestApp};

async fn create_key(app: &TestApp, session: &Session, name: &str) -> Value {
    let res = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": name}))).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

#[tokio::test]
async fn a_key_is_shown_once_and_authenticates() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;

    let created = app
        .call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "CLI", "expires_in_days": 30})))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("onk_"), "{key}");
    assert!(key.starts_with(created.body["prefix"].as_str().unwrap()));
    assert!(created.body["expires_at"].is_string());

    let listed = app.call(Method::GET, "/api/auth/keys", &session.access, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["items"][0]["id"], created.body["id"]);
    assert_eq!(listed.body["items"][0]["last_used_at"], Value::Null);
    assert!(!listed.text.contains(&key), "the list never shows the key");

    let me = app.me(&key).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], user.username.as_str());

    let listed = app.call(Method::GET, "/api/auth/keys", &session.access, None).await;
    assert!(listed.body["items"][0]["last_used_at"].is_string(), "use is recorded");
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let created = create_key(&app, &session, "script").await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(app.me(key).await.status, 200, "used once, so its identity is cached");

    let path = format!("/api/auth/keys/{}", created["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &path, &session.access, None).await.status, 204);
    app.me(key).await.assert_problem(401, "invalid_api_key");
    app.call(Method::DELETE, &path, &session.access, None).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn keys_are_private_to_their_owner() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.new_user().await;
    let (_, mallory) = app.new_user().await;
    let created = create_key(&app, &alice, "alice's").await;

    let path = format!("/api/auth/keys/{}", created["id"].as_str().unwrap());
    app.call(Method::DELETE, &path, &mallory.access, None).await.assert_problem(404, "not_found");
    let listed = app.call(Method::GET, "/api/auth/keys", &mallory.access, None).await;
    assert_eq!(listed.body["items"], json!([]));
    assert_eq!(app.me(created["key"].as_str().unwrap()).await.status, 200, "alice's key still works");
}

#[tokio::test]
async fn an_api_key_cannot_manage_keys_password_or_sessions() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let key = create_key(&app, &session, "limited").await["key"].as_str().unwrap().to_owned();

    let refused = [
        app.call(Method::POST, "/api/auth/keys", &key, Some(&json!({"name": "escalate"}))).await,
        app.call(Method::GET, "/api/auth/keys", &key, None).await,
        app.call(
            Method::POST,
            "/api/auth/password/change",
            &key,
            Some(&json!({"current_password": "x", "new_password": "y"})),
        )
        .await,
        app.call(Method::POST, "/api/auth/logout", &key, Some(&json!({"all": true}))).await,
    ];
    for res in refused {
        res.assert_problem(403, "access_token_required");
    }
}

#[tokio::test]
async fn keys_list_in_pages_and_names_are_validated() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    for name in ["one", "two", "three"] {
        create_key(&app, &session, name).await;
    }
    let first = app.call(Method::GET, "/api/auth/keys?limit=2", &session.access, None).await;
    let names: Vec<&str> =
        first.body["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two"]);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app.call(Method::GET, &format!("/api/auth/keys?limit=2&cursor={cursor}"), &session.access, None).await;
    assert_eq!(second.body["items"][0]["name"], "three");
    assert_eq!(second.body["next_cursor"], Value::Null);

    for (body, field, code) in [
        (json!({"name": "  "}), "name", "invalid_length"),
        (json!({"name": "k".repeat(65)}), "name", "invalid_length"),
        (json!({"name": "ok", "expires_in_days": 0}), "expires_in_days", "out_of_range"),
    ] {
        let res = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&body)).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors(), vec![(field.to_owned(), code.to_owned())]);
    }
}

#[tokio::test]
async fn expired_keys_stop_working() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let key = create_key(&app, &session, "short-lived").await["key"].as_str().unwrap().to_owned();
    app.sql("UPDATE api_keys SET expires_at = created_at WHERE user_id = $1", session.user_id).await;
    app.me(&key).await.assert_problem(401, "invalid_api_key");
}
