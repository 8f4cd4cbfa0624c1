//! The journey every user takes: register, log in, call a protected route, refresh, log out.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{Deployment, Mode, PASSWORD};

async fn story(mode: Mode) {
    let d = Deployment::start(mode).await;
    let registered = d.register("alice").await;
    assert_eq!(registered["user"]["username"], "alice");
    assert!(registered["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3));

    let (status, login) = d
        .call(Method::POST, "/api/auth/login", None, Some(json!({"login": "alice@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let (status, me) = d.call(Method::GET, "/api/auth/me", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["roles"], json!(["User"]));

    let res = d.client.get(d.at("/api/auth/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_some());
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");

    let (status, refreshed) =
        d.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access2 = refreshed["access_token"].as_str().unwrap();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh, "refresh tokens rotate");
    let (status, _) = d.call(Method::GET, "/api/auth/me", Some(access2), None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = d.call(Method::POST, "/api/auth/logout", None, Some(json!({"refresh_token": refresh2}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) =
        d.call(Method::POST, "/api/auth/refresh", None, Some(json!({"refresh_token": refresh2}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a logged-out refresh token is dead: {body}");
}

#[tokio::test]
async fn story_all_in_one() {
    story(Mode::AllInOne).await;
}

#[tokio::test]
async fn story_split() {
    story(Mode::Split).await;
}

/// The reset e-mail is the only place the token appears; the same answer for unknown addresses.
#[tokio::test]
async fn password_reset_through_the_gateway() {
    let d = Deployment::start(Mode::AllInOne).await;
    d.register("carol").await;
    let (known_status, known) =
        d.call(Method::POST, "/api/auth/password/forgot", None, Some(json!({"email": "carol@example.com"}))).await;
    let (unknown_status, unknown) =
        d.call(Method::POST, "/api/auth/password/forgot", None, Some(json!({"email": "nobody@example.com"}))).await;
    assert_eq!(known_status, StatusCode::ACCEPTED);
    assert_eq!((known_status, &known), (unknown_status, &unknown));

    let mails = d.mail.as_ref().unwrap().sent();
    assert_eq!(mails.len(), 1, "only the existing account gets mail");
    let body = &mails[0].body;
    let token = body.split("token=").nth(1).unwrap().split_whitespace().next().unwrap();
    assert!(!known.to_string().contains(token));

    let new_password = "a brand new passphrase 42";
    let (status, body) = d
        .call(
            Method::POST,
            "/api/auth/password/reset",
            None,
            Some(json!({"token": token, "new_password": new_password})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) =
        d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": "carol", "password": new_password}))).await;
    assert_eq!(status, StatusCode::OK);
}
