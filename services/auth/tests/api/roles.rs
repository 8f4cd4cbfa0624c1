use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Session, TestApp, TestUser, test_config};

#[tokio::test]
async fn an_admin_grants_a_role_and_the_targets_old_tokens_die() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, target) = app.new_user().await;
    assert_eq!(app.me(&target.access).await.status, 200);

    let path = format!("/api/auth/users/{}/roles", target.user_id);
    let res = app.call(Method::POST, &path, &admin.access, Some(&json!({"role": "admin"}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body, json!({"user_id": target.user_id, "roles": ["Admin", "User"]}));

    app.me(&target.access).await.assert_problem(401, "token_revoked");
    let refreshed = app.refresh(&target.refresh).await;
    assert_eq!(refreshed.status, 200, "refresh tokens survive a role change");
    assert_eq!(refreshed.body["user"]["roles"], json!(["Admin", "User"]));
    let promoted = Session::from(&refreshed);

    // Idempotent: granting again changes nothing and kills nothing.
    let again = app.call(Method::POST, &path, &admin.access, Some(&json!({"role": "Admin"}))).await;
    assert_eq!(again.body["roles"], json!(["Admin", "User"]));
    assert_eq!(app.me(&promoted.access).await.status, 200);

    let removed = app.call(Method::DELETE, &format!("{path}/Admin"), &admin.access, None).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.body["roles"], json!(["User"]));
    app.me(&promoted.access).await.assert_problem(401, "token_revoked");
    let removed_again = app.call(Method::DELETE, &format!("{path}/Admin"), &admin.access, None).await;
    assert_eq!(removed_again.body["roles"], json!(["User"]));
}

#[tokio::test]
async fn unknown_roles_and_users_are_not_found() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, target) = app.new_user().await;

    let path = format!("/api/auth/users/{}/roles", target.user_id);
    app.call(Method::POST, &path, &admin.access, Some(&json!({"role": "Wizard"})))
        .await
        .assert_problem(404, "not_found");
    app.call(Method::DELETE, &format!("{path}/Wizard"), &admin.access, None).await.assert_problem(404, "not_found");
    let nobody = format!("/api/auth/users/{}/roles", uuid::Uuid::now_v7());
    app.call(Method::POST, &nobody, &admin.access, Some(&json!({"role": "User"})))
        .await
        .assert_problem(404, "not_found");
    app.call(Method::POST, "/api/auth/users/not-a-uuid/roles", &admin.access, Some(&json!({"role": "User"})))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn only_admins_manage_roles() {
    let app = TestApp::spawn().await;
    let (_, user) = app.new_user().await;
    let (_, other) = app.new_user().await;

    let path = format!("/api/auth/users/{}/roles", user.user_id);
    app.call(Method::POST, &path, &user.access, Some(&json!({"role": "Admin"}))).await.assert_problem(403, "forbidden");
    app.call(Method::DELETE, &format!("/api/auth/users/{}/roles/User", other.user_id), &user.access, None)
        .await
        .assert_problem(403, "forbidden");
    app.call(Method::GET, "/api/auth/roles", &user.access, None).await.assert_problem(403, "forbidden");
    assert_eq!(app.me(&user.access).await.body["roles"], json!(["User"]));
}

#[tokio::test]
async fn admins_list_the_roles() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let res = app.call(Method::GET, "/api/auth/roles", &admin.access, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let names: Vec<&str> = res.body["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Admin", "User"]);
    assert!(res.body["items"][0]["created_at"].is_string());
    assert_eq!(res.body["next_cursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_configured_first_admin_is_created_once() {
    let admin = TestUser::unique();
    let mut config = test_config();
    config.first_admin = Some(ollamanet_auth::FirstAdmin {
        email: admin.email.clone(),
        username: admin.username.clone(),
        password: admin.password.clone(),
    });
    let app = TestApp::with_config(config.clone()).await;

    let res = app.login(&admin.email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["user"]["roles"], json!(["Admin", "User"]));

    // Starting again (another instance, or a restart) keeps the one admin.
    let again = ollamanet_auth::start(&app.platform, &config, app.shutdown.clone()).await;
    assert!(again.is_ok());
    assert_eq!(app.login(&admin.username, PASSWORD).await.status, 200);
    let same_email = TestUser { email: admin.email.clone(), ..TestUser::unique() };
    app.register(&same_email).await.assert_problem(409, "email_taken");
}
