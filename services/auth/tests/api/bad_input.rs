use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn malformed_bodies_are_problems_with_stable_codes() {
    let app = TestApp::spawn().await;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.send(app.request(Method::POST, "/api/auth/register").header("content-type", content_type).body(body))
    };

    post_raw("{\"username\": ", "application/json").await.assert_problem(400, "malformed_json");
    post_raw("username=a", "text/plain").await.assert_problem(415, "unsupported_media_type");
    app.send(app.request(Method::POST, "/api/auth/login")).await.assert_problem(415, "unsupported_media_type");

    let wrong_type = app.post("/api/auth/login", &json!({"login": 42, "password": "x"})).await;
    wrong_type.assert_problem(422, "invalid_body");
    assert_eq!(wrong_type.field_errors(), vec![("login".to_owned(), "invalid_type".to_owned())]);

    let missing = app.post("/api/auth/login", &json!({"login": "someone"})).await;
    missing.assert_problem(422, "invalid_body");
    assert_eq!(missing.field_errors(), vec![("password".to_owned(), "required".to_owned())]);

    let unknown = app.post("/api/auth/password/forgot", &json!({"email": "a@b.co", "admin": true})).await;
    unknown.assert_problem(422, "invalid_body");
    assert_eq!(unknown.field_errors(), vec![("admin".to_owned(), "unknown_field".to_owned())]);

    let not_object = app.post("/api/auth/refresh", &json!("onr_x")).await;
    not_object.assert_problem(422, "invalid_body");
}

#[tokio::test]
async fn every_error_names_its_request() {
    let app = TestApp::spawn().await;
    let res = app.send(app.request(Method::POST, "/api/auth/login").header("x-request-id", "trace-me-42")).await;
    assert_eq!(res.header("x-request-id"), Some("trace-me-42"));
    assert_eq!(res.body["request_id"], "trace-me-42");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.send(app.request(Method::GET, "/api/auth/nothing-here")).await.assert_problem(404, "not_found");
    app.send(app.request(Method::GET, "/api/auth/register")).await.assert_problem(405, "method_not_allowed");
    let (_, session) = app.new_user().await;
    app.call(Method::DELETE, "/api/auth/keys/not-a-uuid", &session.access, None).await.assert_problem(404, "not_found");
    app.call(Method::GET, "/api/auth/keys?limit=ten", &session.access, None).await.assert_problem(400, "invalid_query");
    app.call(Method::GET, "/api/auth/keys?cursor=zzz", &session.access, None)
        .await
        .assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;
    let doc = serde_json::to_value(ollamanet_auth::openapi()).unwrap();
    let expected = [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/auth/me", "patch"),
        ("/api/auth/password/change", "post"),
        ("/api/auth/password/forgot", "post"),
        ("/api/auth/password/reset", "post"),
        ("/api/auth/keys", "get"),
        ("/api/auth/keys", "post"),
        ("/api/auth/keys/{id}", "delete"),
        ("/api/auth/.well-known/jwks.json", "get"),
        ("/api/auth/introspect", "post"),
        ("/api/admin/users", "get"),
        ("/api/admin/users", "post"),
        ("/api/admin/users/{id}", "get"),
        ("/api/admin/users/{id}", "patch"),
        ("/api/admin/users/{id}", "delete"),
        ("/api/admin/users/{id}/purge", "post"),
        ("/api/admin/users/{id}/lock", "post"),
        ("/api/admin/users/{id}/unlock", "post"),
        ("/api/admin/users/{id}/activate", "post"),
        ("/api/admin/users/{id}/deactivate", "post"),
        ("/api/admin/users/{id}/roles", "put"),
        ("/api/admin/users/{id}/password-reset", "post"),
        ("/api/admin/roles", "get"),
        ("/api/admin/roles", "post"),
        ("/api/admin/roles/{name}", "delete"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, expected.len(), "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        let responses = op["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path}");
        for (status, response) in responses {
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}");
        }
        // Each documented route is really served (a 404 `route` problem would mean it is not).
        let concrete = path.replace("{id}", &uuid::Uuid::nil().to_string()).replace("{name}", "User");
        let res = app.send(app.request(method.parse().unwrap(), &concrete)).await;
        assert!(!(res.status == 404 && res.body["detail"] == "route not found"), "{method} {path} is not served");
    }
    let schemas = [
        "RegisterRequest",
        "TokenResponse",
        "UserView",
        "Problem",
        "CreatedApiKey",
        "Jwks",
        "Introspection",
        "AdminUserView",
        "RoleView",
    ];
    for schema in schemas {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
}
