use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

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

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    assert_eq!(app.config.lockout_threshold, 3);

    for _ in 0..3 {
        app.login(&user.username, "wrong password here").await.assert_problem(401, "invalid_credentials");
    }
    // Locked: even the right password is refused, without a hint about it.
    let res = app.login(&user.username, PASSWORD).await;
    res.assert_problem(403, "account_locked");
    let retry_after: u64 = res.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=15 * 60 + 1).contains(&retry_after), "{retry_after}");
    // A locked account cannot refresh either; but the live access token keeps working, so that
    // guessing someone's password cannot log them out.
    app.refresh(&session.refresh).await.assert_problem(403, "account_locked");
    assert_eq!(app.me(&session.access).await.status, 200);
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
