use serde_json::json;

use crate::helpers::{EventLog, TestApp, TestUser, jwt_parts};

#[tokio::test]
async fn register_logs_the_user_in_with_tokens_and_a_refresh_cookie() {
    let app = TestApp::spawn().await;
    let user = TestUser { email: "New.Person@Example.ORG".into(), ..TestUser::unique() };
    let res = app.register(&user).await;

    assert_eq!(res.status, 201, "{}", res.text);
    let body = &res.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 30 * 86_400);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.starts_with("onr_"), "{refresh}");
    assert_eq!(body["user"]["username"], user.username.as_str());
    assert_eq!(body["user"]["email"], "new.person@example.org", "e-mail addresses are stored lowercased");
    assert_eq!(body["user"]["roles"], json!(["User"]));
    let id: uuid::Uuid = body["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    let created = body["user"]["created_at"].as_str().unwrap();
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(res.header("cache-control"), Some("no-store"));

    let (cookie, attributes) = res.refresh_cookie().expect("refresh cookie");
    assert_eq!(cookie, refresh);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/auth", "Secure", "Max-Age=2592000"] {
        assert!(attributes.iter().any(|a| a == attribute), "{attribute} missing from {attributes:?}");
    }

    let (header, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    let mut names: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "email", "exp", "iat", "iss", "jti", "nbf", "roles", "sub", "tv", "username"]);
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
}

#[tokio::test]
async fn register_announces_the_user() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let (user, session) = app.new_user().await;

    let event = events.expect(|e| e.kind == "user.registered").await;
    assert_eq!(event.source, "auth");
    assert_eq!(event.data["user_id"], session.user_id.to_string());
    assert_eq!(event.data["username"], user.username.as_str());
    assert_eq!(event.data["email"], user.email.as_str());
}

#[tokio::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let app = TestApp::spawn().await;
    let (first, _) = app.new_user().await;

    let same_name = TestUser { username: first.username.to_uppercase(), ..TestUser::unique() };
    app.register(&same_name).await.assert_problem(409, "username_taken");

    let same_email = TestUser { email: first.email.to_uppercase(), ..TestUser::unique() };
    app.register(&same_email).await.assert_problem(409, "email_taken");
}

#[tokio::test]
async fn invalid_usernames_and_emails_are_field_errors() {
    let app = TestApp::spawn().await;
    let cases = [
        ("ab", "valid@example.org", "username", "invalid_length"),
        ("_leading", "valid@example.org", "username", "invalid_format"),
        ("has space", "valid@example.org", "username", "invalid_format"),
        ("valid_name", "not-an-email", "email", "invalid_email"),
        ("valid_name", "a@b", "email", "invalid_email"),
    ];
    for (username, email, field, code) in cases {
        let user = TestUser { username: username.into(), email: email.into(), ..TestUser::unique() };
        let res = app.register(&user).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors(), vec![(field.to_owned(), code.to_owned())], "{username} {email}");
    }
}

#[tokio::test]
async fn weak_passwords_are_refused_with_a_code_each() {
    let app = TestApp::spawn().await;
    let base = TestUser { username: "weakling".into(), email: "marvin.ok@example.org".into(), ..TestUser::unique() };
    let cases = [
        ("short", "password_too_short"),
        (&*"x".repeat(257), "password_too_long"),
        ("Password123", "password_too_common"),
        ("qwertyuiop", "password_too_common"),
        ("my WEAKLING horse", "password_contains_identity"),
        ("marvin.ok and more", "password_contains_identity"),
    ];
    for (password, code) in cases {
        let res = app.register(&TestUser { password: password.into(), ..base.clone() }).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors(), vec![("password".to_owned(), code.to_owned())], "{password}");
    }
    // Every field is reported at once.
    let res = app.post("/api/auth/register", &json!({"username": "x", "email": "y", "password": "z"})).await;
    let fields: Vec<String> = res.field_errors().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["username", "email", "password"]);
}

#[tokio::test]
async fn roles_cannot_be_mass_assigned_at_registration() {
    let app = TestApp::spawn().await;
    let user = TestUser::unique();
    let res = app
        .post(
            "/api/auth/register",
            &json!({"username": user.username, "email": user.email, "password": user.password, "roles": ["Admin"]}),
        )
        .await;
    res.assert_problem(422, "invalid_body");
    assert_eq!(res.field_errors(), vec![("roles".to_owned(), "unknown_field".to_owned())]);
    // Nothing was created: the same user registers normally afterwards, as a plain User.
    let res = app.register(&user).await;
    assert_eq!(res.status, 201);
    assert_eq!(res.body["user"]["roles"], json!(["User"]));
}
