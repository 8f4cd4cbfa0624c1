use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{EventLog, PASSWORD, Session, TestApp, TestUser, test_config};

fn names(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn setting_roles_replaces_them_and_kills_the_targets_old_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, target) = app.new_user().await;
    assert_eq!(app.me(&target.access).await.status, 200);

    let path = format!("/api/admin/users/{}/roles", target.user_id);
    let res = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": ["admin", "USER", "User"]}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["roles"], json!(["Admin", "User"]), "stored names, once each");

    app.me(&target.access).await.assert_problem(401, "token_revoked");
    let refreshed = app.refresh(&target.refresh).await;
    assert_eq!(refreshed.status, 200, "refresh tokens survive a role change");
    assert_eq!(refreshed.body["user"]["roles"], json!(["Admin", "User"]));
    let promoted = Session::from(&refreshed);

    // The same set again changes nothing and kills nothing.
    let again = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": ["User", "Admin"]}))).await;
    assert_eq!(again.body["roles"], json!(["Admin", "User"]));
    assert_eq!(app.me(&promoted.access).await.status, 200);

    let demoted = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": ["User"]}))).await;
    assert_eq!(demoted.body["roles"], json!(["User"]));
    app.me(&promoted.access).await.assert_problem(401, "token_revoked");
    let emptied = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": []}))).await;
    assert_eq!(emptied.body["roles"], json!([]));
}

#[tokio::test]
async fn unknown_roles_are_field_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, target) = app.new_user().await;

    let path = format!("/api/admin/users/{}/roles", target.user_id);
    let res = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": ["Admin", "Wizard"]}))).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.field_errors(), vec![("roles".to_owned(), "unknown_role".to_owned())]);
    assert_eq!(app.me(&target.access).await.body["roles"], json!(["User"]), "not even Admin was granted");

    let nobody = format!("/api/admin/users/{}/roles", uuid::Uuid::now_v7());
    app.call(Method::PUT, &nobody, &admin.access, Some(&json!({"roles": ["User"]})))
        .await
        .assert_problem(404, "not_found");
    app.call(Method::PUT, "/api/admin/users/not-a-uuid/roles", &admin.access, Some(&json!({"roles": ["User"]})))
        .await
        .assert_problem(404, "not_found");
    app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": "Admin"})))
        .await
        .assert_problem(422, "invalid_body");
    let too_many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
    let res = app.call(Method::PUT, &path, &admin.access, Some(&json!({ "roles": too_many }))).await;
    assert_eq!(res.field_errors(), vec![("roles".to_owned(), "out_of_range".to_owned())]);
}

#[tokio::test]
async fn admins_list_the_roles_with_their_holders() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, _user) = app.new_user().await;
    let (_, gone) = app.new_user().await;
    app.call(Method::DELETE, &format!("/api/admin/users/{}", gone.user_id), &admin.access, None).await;

    let res = app.call(Method::GET, "/api/admin/roles", &admin.access, None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(names(&res.body), ["Admin", "User"]);
    assert_eq!(res.body["items"][0]["user_count"], 1);
    assert_eq!(res.body["items"][1]["user_count"], 2, "the admin and the user; the deleted user does not count");
    assert!(res.body["items"][0]["created_at"].is_string());
    assert_eq!(res.body["next_cursor"], Value::Null);

    // Pages in byte order of the names, the same on every database.
    for name in ["beta", "Alpha_2", "zeta", "a-1"] {
        let res = app.call(Method::POST, "/api/admin/roles", &admin.access, Some(&json!({"name": name}))).await;
        assert_eq!(res.status, 201, "{}", res.text);
        assert_eq!(res.body, json!({"name": name, "created_at": res.body["created_at"], "user_count": 0}));
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/roles?limit=2&cursor={c}"),
            None => "/api/admin/roles?limit=2".to_owned(),
        };
        let page = app.call(Method::GET, &path, &admin.access, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(names(&page.body).into_iter().map(str::to_owned));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["Admin", "Alpha_2", "User", "a-1", "beta", "zeta"]);
}

#[tokio::test]
async fn role_names_follow_the_rules_and_are_unique_regardless_of_case() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let create = |name: Value| {
        let body = json!({ "name": name });
        let app = &app;
        let access = admin.access.clone();
        async move { app.call(Method::POST, "/api/admin/roles", &access, Some(&body)).await }
    };

    for (bad, code) in [
        ("x", "invalid_length"),
        (&"r".repeat(33) as &str, "invalid_length"),
        ("two words", "invalid_format"),
        ("dot.ted", "invalid_format"),
        ("rôle", "invalid_format"),
    ] {
        let res = create(json!(bad)).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors(), vec![("name".to_owned(), code.to_owned())], "{bad}");
    }
    assert_eq!(create(json!("Researchers")).await.status, 201);
    let dup = create(json!("researchers")).await;
    dup.assert_problem(409, "role_exists");
    assert_eq!(dup.field_errors(), vec![("name".to_owned(), "role_exists".to_owned())]);
    create(json!("ADMIN")).await.assert_problem(409, "role_exists");
    create(json!(42)).await.assert_problem(422, "invalid_body");
    let extra = app.call(Method::POST, "/api/admin/roles", &admin.access, Some(&json!({"name": "Ops", "x": 1}))).await;
    assert_eq!(extra.field_errors(), vec![("x".to_owned(), "unknown_field".to_owned())]);
}

#[tokio::test]
async fn a_role_is_deleted_only_when_nobody_holds_it_and_never_admin_or_user() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let admin = app.admin().await;
    let (_, user) = app.new_user().await;
    app.call(Method::POST, "/api/admin/roles", &admin.access, Some(&json!({"name": "Research"}))).await;
    let roles = format!("/api/admin/users/{}/roles", user.user_id);
    app.call(Method::PUT, &roles, &admin.access, Some(&json!({"roles": ["User", "research"]}))).await;

    let res = app.call(Method::DELETE, "/api/admin/roles/research", &admin.access, None).await;
    res.assert_problem(409, "role_in_use");
    for protected in ["Admin", "user", "ADMIN"] {
        app.call(Method::DELETE, &format!("/api/admin/roles/{protected}"), &admin.access, None)
            .await
            .assert_problem(409, "role_protected");
    }
    app.call(Method::DELETE, "/api/admin/roles/Nothing", &admin.access, None).await.assert_problem(404, "not_found");

    app.call(Method::PUT, &roles, &admin.access, Some(&json!({"roles": ["User"]}))).await;
    let res = app.call(Method::DELETE, "/api/admin/roles/RESEARCH", &admin.access, None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let list = app.call(Method::GET, "/api/admin/roles", &admin.access, None).await;
    assert_eq!(names(&list.body), ["Admin", "User"]);
    let granted = app.call(Method::PUT, &roles, &admin.access, Some(&json!({"roles": ["Research"]}))).await;
    assert_eq!(granted.field_errors(), vec![("roles".to_owned(), "unknown_role".to_owned())]);

    let created = events.expect(|e| e.kind == "admin.audited" && e.data["action"] == "role.create").await;
    assert_eq!(created.data["target_type"], "role");
    assert_eq!(created.data["target_id"], "Research");
    assert_eq!(created.data["after"], json!({"name": "Research"}));
    let deleted = events.expect(|e| e.kind == "admin.audited" && e.data["action"] == "role.delete").await;
    assert_eq!(deleted.data["target_id"], "Research", "the stored name, whatever the request's case");
    assert_eq!(deleted.data["actor_id"], admin.user_id.to_string());
    assert_eq!(deleted.data["before"], json!({"name": "Research"}));
    assert!(deleted.data.get("after").is_none());
    let refused = events.all(|e| e.data["action"] == "role.delete");
    assert_eq!(refused.len(), 1, "refused deletions are not audited");
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
