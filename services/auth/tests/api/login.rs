use ollamanet_auth::AuthConfig;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{PASSWORD, Res, Session, TestApp, reset_token, test_config};

#[tokio::test]
async fn login_by_username_or_email_in_any_case() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;

    for login in [user.username.clone(), user.username.to_uppercase(), user.email.clone(), user.email.to_uppercase()] {
        let res = app.login(&login, PASSWORD).await;
        assert_eq!(res.status, 200, "{login}: {}", res.text);
        assert_eq!(res.body["user"]["username"], user.username.as_str());
        assert!(res.body["user"]["last_login_at"].is_string());
        assert!(res.refresh_cookie().is_some());
        assert_eq!(app.me(res.body["access_token"].as_str().unwrap()).await.status, 200);
    }
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;

    let wrong = app.login(&user.username, "not the password at all").await;
    let unknown = app.login("nobody_here", PASSWORD).await;
    let unknown_email = app.login("nobody@example.org", PASSWORD).await;
    for res in [&wrong, &unknown, &unknown_email] {
        res.assert_problem(401, "invalid_credentials");
        assert_eq!(res.body["detail"], wrong.body["detail"]);
    }
}

/// Seconds the answer says to wait.
fn retry_after(res: &Res) -> u64 {
    res.header("retry-after").expect("Retry-After").parse().unwrap()
}

/// A stranger guessing passwords slows new sign-ins down, but can sign nobody out: the owner's
/// session still refreshes, and their access token and API key still work.
#[tokio::test]
async fn repeated_failures_slow_sign_in_down_but_never_sign_the_owner_out() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    assert_eq!((app.config.lockout_threshold, app.config.lockout_first_wait.as_secs()), (3, 60));
    let key = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "cli"}))).await;
    let key = key.body["key"].as_str().expect("an API key").to_owned();

    for _ in 0..3 {
        app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    }
    // The next attempt must wait, whatever the password: the right one gets no hint either.
    let res = app.login(&user.username, PASSWORD).await;
    res.assert_problem(429, "login_throttled");
    assert!((1..=61).contains(&retry_after(&res)), "{}", retry_after(&res));
    app.login(&user.username, "wrong password here").await.assert_problem(429, "login_throttled");

    let renewed = app.refresh(&session.refresh).await;
    assert_eq!(renewed.status, 200, "the session refreshes: {}", renewed.text);
    assert_eq!(app.me(&Session::from(&renewed).access).await.status, 200);
    assert_eq!(app.me(&session.access).await.status, 200, "the access token works");
    assert_eq!(app.me(&key).await.status, 200, "the API key works");
    let intro = app.post("/api/auth/introspect", &json!({"token": key})).await;
    assert_eq!(intro.body["active"], true, "{}", intro.text);

    // The wait is over (as if a minute had passed): each further failure doubles the next wait.
    app.sql("UPDATE users SET locked_until = NULL WHERE id = $1", session.user_id).await;
    app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    let res = app.login(&user.username, PASSWORD).await;
    res.assert_problem(429, "login_throttled");
    assert!((61..=121).contains(&retry_after(&res)), "{}", retry_after(&res));
    app.sql("UPDATE users SET locked_until = NULL WHERE id = $1", session.user_id).await;
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "the right password after the wait");
}

/// Guesses sent all at once are each counted before the password is checked: no more of them
/// are checked than the budget allows.
#[tokio::test]
async fn parallel_guesses_get_no_more_attempts_than_the_budget() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;
    let guesses = (0..12).map(|_| app.login(&user.username, "wrong password here"));
    let results = futures::future::join_all(guesses).await;
    let codes: Vec<_> = results.iter().map(|r| (r.status, r.code().to_owned())).collect();
    assert_eq!(codes.iter().filter(|c| c.1 == "invalid_credentials").count(), 3, "{codes:?}");
    assert!(
        codes.iter().all(|c| c.1 == "invalid_credentials" || *c == (429, "login_throttled".to_owned())),
        "{codes:?}"
    );
}

/// After `reset_required_after` failures in a row the password alone no longer signs in, and the
/// owner is mailed a reset link; their sessions go on until they use it.
#[tokio::test]
async fn after_the_budget_only_a_reset_link_signs_in_again() {
    let app = TestApp::with_config(AuthConfig { reset_required_after: 5, ..test_config() }).await;
    let (user, session) = app.new_user().await;
    for _ in 0..5 {
        // Each wait is over (as if time had passed).
        app.sql("UPDATE users SET locked_until = NULL WHERE id = $1", session.user_id).await;
        app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    }
    let mail = app.mailer.wait_for(&user.email).await;
    assert_eq!(mail.subject, "Choose a new OllamaNet password");
    assert!(mail.body.contains("where you are signed in already, you stay signed in"), "{}", mail.body);
    app.sql("UPDATE users SET locked_until = NULL WHERE id = $1", session.user_id).await;
    app.login(&user.username, PASSWORD).await.assert_problem(403, "password_reset_required");
    app.login(&user.username, "another wrong guess").await.assert_problem(403, "password_reset_required");
    assert_eq!(app.mailer.sent().len(), 1, "one mail, however many attempts follow");
    let renewed = app.refresh(&session.refresh).await;
    assert_eq!(renewed.status, 200, "the session goes on: {}", renewed.text);
    assert_eq!(app.me(&Session::from(&renewed).access).await.status, 200);

    let reset = json!({"token": reset_token(&mail.body), "new_password": "a new and better phrase"});
    assert_eq!(app.post("/api/auth/password/reset", &reset).await.status, 204);
    assert_eq!(app.login(&user.username, "a new and better phrase").await.status, 200);
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;

    for _ in 0..2 {
        app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    }
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200);
    for _ in 0..2 {
        app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    }
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "four failures, never three in a row");
}

#[tokio::test]
async fn overlong_passwords_are_refused_without_hashing() {
    let app = TestApp::spawn().await;
    let (user, _) = app.new_user().await;
    let res = app.post("/api/auth/login", &json!({"login": user.username, "password": "x".repeat(10_000)})).await;
    res.assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn inactive_accounts_cannot_log_in_refresh_or_use_tokens() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    app.sql("UPDATE users SET is_active = FALSE WHERE id = $1", session.user_id).await;

    app.login(&user.username, PASSWORD).await.assert_problem(403, "account_inactive");
    // Without the password nothing is revealed about the account.
    app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    app.refresh(&session.refresh).await.assert_problem(403, "account_inactive");
    app.me(&session.access).await.assert_problem(401, "account_disabled");
    let intro = app.post("/api/auth/introspect", &json!({"token": session.access})).await;
    assert_eq!(intro.body["active"], false);
}

#[tokio::test]
async fn deleted_accounts_look_unknown() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    app.sql("UPDATE users SET deleted_at = created_at WHERE id = $1", session.user_id).await;

    app.login(&user.username, PASSWORD).await.assert_problem(401, "invalid_credentials");
    app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");
    app.me(&session.access).await.assert_problem(401, "account_disabled");
}
