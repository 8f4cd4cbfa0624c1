//! Authorisation through the gateway: roles, mass assignment, other users' data, forged
//! identity headers.

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Deployment, Mode, PASSWORD, base_config, eventually};

#[tokio::test]
async fn a_user_cannot_reach_admin_routes_or_grant_themselves_roles() {
    let d = Deployment::start(Mode::AllInOne).await;
    let alice = d.register("alice").await;
    let token = alice["access_token"].as_str().unwrap();
    let alice_id = alice["user"]["id"].as_str().unwrap();

    let (status, body) = d.call(Method::GET, "/api/admin/roles", Some(token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, _) = d
        .call(
            Method::PUT,
            &format!("/api/admin/users/{alice_id}/roles"),
            Some(token),
            Some(json!({"roles": ["Admin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = d.call(Method::GET, "/api/admin/roles", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Mass assignment: roles on register or profile update are refused, not applied.
    let (status, body) = d
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": "eve", "email": "eve@example.com", "password": PASSWORD, "roles": ["Admin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "roles");
    let (status, _) = d.call(Method::PATCH, "/api/auth/me", Some(token), Some(json!({"roles": ["Admin"]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, me) = d.call(Method::GET, "/api/auth/me", Some(token), None).await;
    assert_eq!(me["roles"], json!(["User"]));

    // A client-sent identity header is stripped: it cannot impersonate anyone.
    let admin = d.admin_token("root").await;
    let (_, admin_me) = d.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    let res = d
        .client
        .get(d.at("/api/admin/roles"))
        .bearer_auth(token)
        .header("x-user-id", admin_me["id"].as_str().unwrap())
        .header("x-user-roles", "Admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn role_changes_apply_at_once() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let (status, _) = d.call(Method::GET, "/api/admin/roles", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);

    let bob = d.register("bob").await;
    let bob_token = bob["access_token"].as_str().unwrap();
    let bob_id = bob["user"]["id"].as_str().unwrap();
    let (status, body) = d
        .call(
            Method::PUT,
            &format!("/api/admin/users/{bob_id}/roles"),
            Some(&admin),
            Some(json!({"roles": ["Admin", "User"]})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = d.call(Method::GET, "/api/auth/me", Some(bob_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token carries old roles and must die: {body}");
    let (_, login) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "bob", "password": PASSWORD}))).await;
    let new_token = login["access_token"].as_str().unwrap();
    let (status, _) = d.call(Method::GET, "/api/admin/roles", Some(new_token), None).await;
    assert_eq!(status, StatusCode::OK, "the new token carries the Admin role");
}

async fn api_keys(mode: Mode) {
    let d = Deployment::start(mode).await;
    let alice = d.user_token("alice").await;
    let bob = d.user_token("bob").await;

    let (status, created) = d.call(Method::POST, "/api/auth/keys", Some(&bob), Some(json!({"name": "laptop"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("onk_"));

    // The key authenticates through the gateway.
    let (status, me) = d.call(Method::GET, "/api/auth/me", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "bob");

    // Alice sees none of Bob's keys and cannot revoke them.
    let (status, list) = d.call(Method::GET, "/api/auth/keys", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains(&key_id), "{list}");
    let (status, _) = d.call(Method::DELETE, &format!("/api/auth/keys/{key_id}"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = d.call(Method::GET, "/api/auth/me", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "Bob's key survives Alice's attempt");

    // Bob's own list never shows the secret again.
    let (_, list) = d.call(Method::GET, "/api/auth/keys", Some(&bob), None).await;
    assert!(list.to_string().contains(&key_id) && !list.to_string().contains(&key));

    let (status, _) = d.call(Method::DELETE, &format!("/api/auth/keys/{key_id}"), Some(&bob), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = d.call(Method::GET, "/api/auth/me", Some(&key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key stops working at once");
}

#[tokio::test]
async fn api_keys_all_in_one() {
    api_keys(Mode::AllInOne).await;
}

#[tokio::test]
async fn api_keys_split() {
    api_keys(Mode::Split).await;
}

/// A locked user's access token, API key and refresh token stop working on every service at once,
/// whether the gateway shares a process (and cache) with auth or reaches it over the network.
async fn a_lock_ends_access_at_once(d: Deployment) {
    let admin = d.admin_token("root").await;
    let carl = d.register("carl").await;
    let token = carl["access_token"].as_str().unwrap();
    let carl_id = carl["user"]["id"].as_str().unwrap();
    let (_, key) = d.call(Method::POST, "/api/auth/keys", Some(token), Some(json!({"name": "cli"}))).await;
    let key = key["key"].as_str().unwrap().to_owned();
    for credential in [token, key.as_str()] {
        // Cached as valid first, so that the lock must evict it.
        assert_eq!(d.call(Method::GET, "/api/folders", Some(credential), None).await.0, StatusCode::OK);
    }
    let lock = format!("/api/admin/users/{carl_id}/lock");
    let (status, body) = d.call(Method::POST, &lock, Some(&admin), Some(json!({"minutes": 60}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for credential in [token, key.as_str()] {
        for path in ["/api/auth/me", "/api/folders", "/api/conversations"] {
            let (status, body) = d.call(Method::GET, path, Some(credential), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} after the lock: {body}");
        }
    }
    let (status, body) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "carl", "password": PASSWORD}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("account_locked")), "{body}");
    let unlock = format!("/api/admin/users/{carl_id}/unlock");
    assert_eq!(d.call(Method::POST, &unlock, Some(&admin), None).await.0, StatusCode::OK);
    let (status, _) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "carl", "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::OK, "an unlocked user signs in again");
}

#[tokio::test]
async fn a_lock_ends_access_at_once_all_in_one() {
    a_lock_ends_access_at_once(Deployment::start(Mode::AllInOne).await).await;
}

#[tokio::test]
async fn a_lock_ends_access_at_once_with_services_apart() {
    let infra = TestInfra::new().await;
    let config = base_config(&infra);
    a_lock_ends_access_at_once(Deployment::apart(infra, config, &["auth", "inference", "conversation"]).await).await;
}

/// A stranger guesses a user's password, five times and then fifty: the user's refresh token,
/// access token and API key keep working on every service, in either deployment; only new
/// sign-ins wait (`login_throttled`), and then an admin's lock still ends everything at once.
async fn wrong_passwords_end_no_session(d: Deployment) {
    let erin = d.register("erin").await;
    let token = erin["access_token"].as_str().unwrap().to_owned();
    let mut refresh = erin["refresh_token"].as_str().unwrap().to_owned();
    let (_, key) = d.call(Method::POST, "/api/auth/keys", Some(&token), Some(json!({"name": "cli"}))).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let guess = async |n: usize| {
        let body = json!({"login": "erin", "password": format!("guess number {n}")});
        d.call(Method::POST, "/api/auth/login", None, Some(body)).await
    };
    let mut tried = 0;
    for guesses in [5, 50] {
        while tried < guesses {
            let (status, body) = guess(tried).await;
            let expected = if tried < 5 { "invalid_credentials" } else { "login_throttled" };
            assert_eq!(body["code"], expected, "guess {tried}: {status} {body}");
            tried += 1;
        }
        let (status, renewed) =
            d.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
        assert_eq!(status, StatusCode::OK, "after {guesses} guesses: {renewed}");
        refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
        for credential in [renewed["access_token"].as_str().unwrap(), token.as_str(), key.as_str()] {
            let (status, body) = d.call(Method::GET, "/api/auth/me", Some(credential), None).await;
            assert_eq!(status, StatusCode::OK, "after {guesses} guesses: {body}");
        }
    }
    let (status, body) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "erin", "password": PASSWORD}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("login_throttled")), "{body}");

    let admin = d.admin_token("root").await;
    let erin_id = erin["user"]["id"].as_str().unwrap();
    let lock = format!("/api/admin/users/{erin_id}/lock");
    assert_eq!(d.call(Method::POST, &lock, Some(&admin), Some(json!({"minutes": 5}))).await.0, StatusCode::OK);
    for credential in [token.as_str(), key.as_str()] {
        assert_eq!(d.call(Method::GET, "/api/auth/me", Some(credential), None).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = d.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an admin's lock ends the session");
}

#[tokio::test]
async fn wrong_passwords_end_no_session_all_in_one() {
    wrong_passwords_end_no_session(Deployment::start(Mode::AllInOne).await).await;
}

#[tokio::test]
async fn wrong_passwords_end_no_session_split() {
    wrong_passwords_end_no_session(Deployment::start(Mode::Split).await).await;
}

/// Purging a user (after a soft delete) removes their conversations too: the auth service
/// publishes `user.deleted`, the conversation service deletes what it holds of theirs.
#[tokio::test]
async fn a_purged_user_takes_their_conversations_with_them() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let dora = d.register("dora").await;
    let (token, dora_id) = (dora["access_token"].as_str().unwrap(), dora["user"]["id"].as_str().unwrap());
    let kept = d.user_token("kept").await;
    for t in [token, kept.as_str()] {
        let (status, body) = d.call(Method::POST, "/api/conversations", Some(t), Some(json!({"model": "m"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let platform = kit::config::Platform::new(d.config.infra.clone(), "test-purge").unwrap();
    let db = platform.database("conversation", &ollamanet_conversation::MIGRATIONS).await.unwrap();
    let owner = uuid::Uuid::parse_str(dora_id).unwrap();
    let count = async |owner: Option<uuid::Uuid>| -> i64 {
        let sql = "SELECT COUNT(*) FROM conversations WHERE $1 IS NULL OR owner_id = $1";
        kit::with_db!(&db, |pool| sqlx::query_scalar(sql).bind(owner).fetch_one(pool).await.unwrap())
    };
    assert_eq!((count(Some(owner)).await, count(None).await), (1, 2));

    let user = format!("/api/admin/users/{dora_id}");
    let (status, body) = d.call(Method::POST, &format!("{user}/purge"), Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("user_not_deleted")), "{body}");
    assert_eq!(d.call(Method::DELETE, &user, Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(count(Some(owner)).await, 1, "a soft-deleted user's data is kept until the purge");
    assert_eq!(d.call(Method::POST, &format!("{user}/purge"), Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    eventually("the purged user's conversations gone", async || count(Some(owner)).await == 0).await;
    assert_eq!(count(None).await, 1, "other users' conversations stay");
    assert_eq!(d.call(Method::GET, &user, Some(&admin), None).await.0, StatusCode::NOT_FOUND);
}
