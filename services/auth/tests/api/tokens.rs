use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::authn::{Authenticator, CredentialKind, RemoteIdentitySource};
use kit::upstream::Upstream;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, jwt_parts};

async fn introspect(app: &TestApp, token: &str) -> crate::helpers::Res {
    app.post("/api/auth/introspect", &json!({"token": token})).await
}

#[tokio::test]
async fn introspection_reports_the_current_identity_of_a_genuine_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;

    let res = introspect(&app, &session.access).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["active"], true);
    assert_eq!(res.body["identity"]["user_id"], session.user_id.to_string());
    assert_eq!(res.body["identity"]["username"], user.username.as_str());
    assert_eq!(res.body["identity"]["credential"], "access_token");
    assert_eq!(res.body["identity"]["token_version"], 0);

    // After a role change the same (now stale) token still introspects, with the new state:
    // callers compare token versions themselves.
    let path = format!("/api/admin/users/{}/roles", session.user_id);
    let set = app.call(Method::PUT, &path, &admin.access, Some(&json!({"roles": ["Admin", "User"]}))).await;
    assert_eq!(set.status, 200, "{}", set.text);
    let res = introspect(&app, &session.access).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["identity"]["token_version"], 1);
    assert_eq!(res.body["identity"]["roles"], json!(["Admin", "User"]));
}

#[tokio::test]
async fn tampered_or_foreign_tokens_do_not_introspect() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let (_, mut claims) = jwt_parts(&session.access);
    claims["roles"] = json!(["Admin"]);
    let mut parts: Vec<String> = session.access.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = parts.join(".");

    for token in [tampered.as_str(), "garbage", "onk_unknown-key", ""] {
        introspect(&app, token).await.assert_problem(401, "invalid_token");
    }
    app.me(&tampered).await.assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn api_keys_introspect_as_keys_until_revoked() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let created = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "k"}))).await;
    let key = created.body["key"].as_str().unwrap();

    let res = introspect(&app, key).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["identity"]["credential"], "api_key");
    assert_eq!(res.body["identity"]["user_id"], session.user_id.to_string());

    let path = format!("/api/auth/keys/{}", created.body["id"].as_str().unwrap());
    app.call(Method::DELETE, &path, &session.access, None).await;
    introspect(&app, key).await.assert_problem(401, "invalid_token");
}

/// What a service in another process does: authenticate through the auth service's HTTP API.
#[tokio::test]
async fn a_remote_authenticator_verifies_tokens_and_sees_revocations() {
    let app = TestApp::spawn().await;
    let (_, session) = app.new_user().await;
    let source = RemoteIdentitySource(Upstream::http(std::slice::from_ref(&app.base)).unwrap());
    let tokens = &app.platform.config.tokens;
    let remote =
        Authenticator::new(Arc::new(source), app.platform.cache.clone(), &tokens.issuer, &tokens.audience, false);

    let identity = remote.authenticate(&session.access).await.expect("authenticated");
    assert_eq!(identity.user_id, session.user_id);
    assert_eq!(identity.credential, CredentialKind::AccessToken);
    assert_eq!(identity.roles, ["User"]);

    app.call(Method::POST, "/api/auth/logout", &session.access, Some(&json!({"all": true}))).await;
    let refused = remote.authenticate(&session.access).await.expect_err("revoked");
    assert_eq!(refused.code, "token_revoked");
}
