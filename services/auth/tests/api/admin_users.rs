use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{EventLog, PASSWORD, Res, Session, TestApp, reset_token};

fn user_path(id: Uuid, action: &str) -> String {
    format!("/api/admin/users/{id}{action}")
}

async fn admin_call(app: &TestApp, admin: &Session, method: Method, path: &str, body: Option<Value>) -> Res {
    app.call(method, path, &admin.access, body.as_ref()).await
}

/// Creates a user through the admin API, with the test password.
async fn create(app: &TestApp, admin: &Session, username: &str, email: &str) -> Uuid {
    let body = json!({"username": username, "email": email, "password": PASSWORD});
    let res = admin_call(app, admin, Method::POST, "/api/admin/users", Some(body)).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body["id"].as_str().unwrap().parse().unwrap()
}

/// Every username of the list `query`, following `next_cursor` page by page.
async fn walk(app: &TestApp, admin: &Session, query: &str, limit: u32) -> Vec<String> {
    let mut names = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/admin/users?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = admin_call(app, admin, Method::GET, &path, None).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        names.extend(items.iter().map(|u| u["username"].as_str().unwrap().to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return names,
        }
    }
}

async fn username_of(app: &TestApp, session: &Session) -> String {
    app.me(&session.access).await.body["username"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_user_list_searches_filters_sorts_and_pages_without_gaps() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let admin_name = username_of(&app, &admin).await;
    // Names whose order differs between byte order and a locale's (which ignores punctuation),
    // so the test fails if one database sorts otherwise.
    let people = [
        ("delta.D", "zz.delta@example.org"),
        ("Bravo_b", "m_bravo@example.org"),
        ("alpha-A", "m.alpha@example.org"),
        ("charlie", "Charlie@Example.org"),
        ("Echo9", "a-echo@example.net"),
        ("bravo.c", "m-bravo@example.com"),
    ];
    let mut created = vec![admin_name.clone()];
    let mut emails = vec![app.me(&admin.access).await.body["email"].as_str().unwrap().to_owned()];
    for (name, email) in people {
        create(&app, &admin, name, email).await;
        created.push(name.to_owned());
        emails.push(email.to_lowercase());
    }
    for login in ["charlie", "alpha-A"] {
        assert_eq!(app.login(login, PASSWORD).await.status, 200);
    }

    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let mut by_name = created.clone();
    by_name.sort_by_key(|n| n.to_lowercase());
    let mut by_email: Vec<(String, String)> = emails.iter().cloned().zip(created.iter().cloned()).collect();
    by_email.sort();
    let by_email: Vec<String> = by_email.into_iter().map(|(_, n)| n).collect();
    let mut by_login = vec!["alpha-A".to_owned(), "charlie".to_owned(), admin_name.clone()];
    by_login.extend(newest_first.iter().filter(|n| !by_login.contains(n)).cloned().collect::<Vec<_>>());

    for limit in [1, 2, 3, 100] {
        assert_eq!(walk(&app, &admin, "", limit).await, newest_first, "default sort, limit {limit}");
        assert_eq!(walk(&app, &admin, "sort=created", limit).await, newest_first);
        assert_eq!(walk(&app, &admin, "sort=username", limit).await, by_name, "limit {limit}");
        assert_eq!(walk(&app, &admin, "sort=email", limit).await, by_email, "limit {limit}");
        assert_eq!(walk(&app, &admin, "sort=last_login", limit).await, by_login, "limit {limit}");
    }
    let first = admin_call(&app, &admin, Method::GET, "/api/admin/users?limit=1", None).await;
    let view = &first.body["items"][0];
    assert_eq!(view["username"], "bravo.c");
    assert_eq!(view["email"], "m-bravo@example.com");
    assert_eq!(view["roles"], json!(["User"]));
    assert_eq!((view["active"].as_bool(), view["failed_logins"].as_i64()), (Some(true), Some(0)));
    assert!(view["locked_until"].is_null() && view["deleted_at"].is_null() && view["last_login_at"].is_null());
    assert!(view.get("password_hash").is_none() && view.get("token_version").is_none());

    // Search: any case, username or e-mail, and `%` or `_` are not wildcards.
    assert_eq!(walk(&app, &admin, "q=BRAVO&sort=username", 2).await, ["bravo.c", "Bravo_b"]);
    assert_eq!(walk(&app, &admin, "q=ZZ.DELTA", 2).await, ["delta.D"]);
    assert_eq!(walk(&app, &admin, "q=example.net", 2).await, ["Echo9"]);
    assert!(walk(&app, &admin, "q=%25", 2).await.is_empty());
    assert_eq!(walk(&app, &admin, "q=o_b", 2).await, ["Bravo_b"]);

    // Roles and states.
    let charlie = app.login("charlie", PASSWORD).await.body["user"]["id"].as_str().unwrap().parse().unwrap();
    admin_call(&app, &admin, Method::POST, "/api/admin/roles", Some(json!({"name": "Research"}))).await;
    let set = json!({"roles": ["User", "Research"]});
    assert_eq!(admin_call(&app, &admin, Method::PUT, &user_path(charlie, "/roles"), Some(set)).await.status, 200);
    assert_eq!(walk(&app, &admin, "role=research", 2).await, ["charlie"]);
    assert_eq!(walk(&app, &admin, "role=Admin", 2).await, [admin_name.as_str()]);
    assert!(walk(&app, &admin, "role=nobody", 2).await.is_empty());

    let id = |name: &str| {
        let name = name.to_owned();
        let (app, admin) = (&app, &admin);
        async move {
            let res = admin_call(app, admin, Method::GET, &format!("/api/admin/users?q={name}"), None).await;
            res.body["items"][0]["id"].as_str().unwrap().parse::<Uuid>().unwrap()
        }
    };
    let (echo, delta, alpha) = (id("Echo9").await, id("delta.D").await, id("alpha-A").await);
    admin_call(&app, &admin, Method::POST, &user_path(echo, "/deactivate"), None).await;
    admin_call(&app, &admin, Method::POST, &user_path(delta, "/lock"), Some(json!({"minutes": 5}))).await;
    admin_call(&app, &admin, Method::DELETE, &user_path(alpha, ""), None).await;
    assert_eq!(walk(&app, &admin, "status=inactive", 2).await, ["Echo9"]);
    assert_eq!(walk(&app, &admin, "status=locked", 2).await, ["delta.D"]);
    assert_eq!(walk(&app, &admin, "status=deleted", 2).await, ["alpha-A"]);
    assert_eq!(
        walk(&app, &admin, "status=active&sort=username", 2).await,
        ["bravo.c", "Bravo_b", "charlie", admin_name.as_str()]
    );
    let everyone = walk(&app, &admin, "sort=username", 2).await;
    assert_eq!(
        everyone,
        ["bravo.c", "Bravo_b", "charlie", "delta.D", "Echo9", admin_name.as_str()],
        "deleted users are hidden"
    );
    assert_eq!(walk(&app, &admin, "q=alpha", 2).await, Vec::<String>::new());
    assert_eq!(walk(&app, &admin, "q=alpha&status=deleted", 2).await, ["alpha-A"]);
}

#[tokio::test]
async fn bad_list_queries_are_problems() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for _ in 0..3 {
        create(
            &app,
            &admin,
            &format!("u{}", &Uuid::now_v7().simple().to_string()[20..]),
            &format!("{}@x.org", Uuid::now_v7().simple()),
        )
        .await;
    }
    let get = |query: &str| {
        let path = format!("/api/admin/users?{query}");
        let (app, admin) = (&app, &admin);
        async move { admin_call(app, admin, Method::GET, &path, None).await }
    };
    for query in ["sort=random", "status=banned", "limit=ten", "limit=-1", "page=2", "limit=1&limit=2"] {
        get(query).await.assert_problem(400, "invalid_query");
    }
    // A limit out of range is clamped, as on every list.
    let all = get("limit=0").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(get("limit=100000").await.body["items"].as_array().unwrap().len(), 4);

    let page = get("limit=1&sort=username").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    for query in [
        format!("sort=email&cursor={cursor}"),
        format!("cursor={cursor}"),
        "cursor=not-a-cursor".to_owned(),
        "cursor=e30".to_owned(),
    ] {
        let res = get(&query).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors(), vec![("cursor".to_owned(), "invalid_cursor".to_owned())], "{query}");
    }
    let res = get(&format!("q={}", "x".repeat(255))).await;
    assert_eq!(res.field_errors(), vec![("q".to_owned(), "invalid_length".to_owned())]);
}

#[tokio::test]
async fn admins_create_users_with_the_rules_of_registration() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let admin = app.admin().await;
    let post = |body: Value| {
        let (app, admin) = (&app, &admin);
        async move { admin_call(app, admin, Method::POST, "/api/admin/users", Some(body)).await }
    };

    let res =
        post(json!({"username": "Bob", "email": "Bob@Example.org", "password": PASSWORD, "roles": ["user", "admin"]}))
            .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["email"], "bob@example.org");
    assert_eq!(res.body["roles"], json!(["Admin", "User"]));
    assert_eq!(res.body["active"], true);
    let bob = res.body["id"].as_str().unwrap().to_owned();
    let login = app.login("bob@example.org", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["user"]["roles"], json!(["Admin", "User"]));
    let registered = events.expect(|e| e.kind == "user.registered" && e.data["user_id"] == bob).await;
    assert_eq!(registered.data["username"], "Bob");
    let audit = events.expect(|e| e.kind == "admin.audited" && e.data["target_id"] == bob).await;
    assert_eq!(audit.data["action"], "user.create");
    assert_eq!(
        audit.data["after"],
        json!({"username": "Bob", "email": "bob@example.org", "roles": ["Admin", "User"], "active": true})
    );
    assert!(!audit.data.to_string().contains("argon2") && !audit.data.to_string().contains(PASSWORD));

    let inactive =
        post(json!({"username": "carol", "email": "carol@example.org", "password": PASSWORD, "active": false})).await;
    assert_eq!((inactive.status, &inactive.body["active"]), (201, &json!(false)));
    app.login("carol", PASSWORD).await.assert_problem(403, "account_inactive");

    let taken = post(json!({"username": "BOB", "email": "other@example.org", "password": PASSWORD})).await;
    taken.assert_problem(409, "username_taken");
    assert_eq!(taken.field_errors(), vec![("username".to_owned(), "username_taken".to_owned())]);
    post(json!({"username": "bobby", "email": "BOB@example.org", "password": PASSWORD}))
        .await
        .assert_problem(409, "email_taken");
    let bad = post(json!({"username": "x", "email": "nope", "password": "password1234", "roles": ["Wizard"]})).await;
    bad.assert_problem(422, "validation_failed");
    let mut fields = bad.field_errors();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("email", "invalid_email"),
            ("password", "password_too_common"),
            ("roles", "unknown_role"),
            ("username", "invalid_length")
        ]
        .map(|(f, c)| (f.to_owned(), c.to_owned()))
    );
    let res = post(json!({"username": "dave", "email": "dave@example.org", "password": "dave is my name ok"})).await;
    assert_eq!(res.field_errors(), vec![("password".to_owned(), "password_contains_identity".to_owned())]);
    let res =
        post(json!({"username": "eve", "email": "eve@example.org", "password": PASSWORD, "token_version": 9})).await;
    res.assert_problem(422, "invalid_body");
    assert_eq!(res.field_errors(), vec![("token_version".to_owned(), "unknown_field".to_owned())]);
    assert_eq!(app.login("eve", PASSWORD).await.status, 401, "nothing was created");
}

#[tokio::test]
async fn a_user_created_without_a_password_sets_one_from_the_mail() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let res = admin_call(
        &app,
        &admin,
        Method::POST,
        "/api/admin/users",
        Some(json!({"username": "frank", "email": "frank@example.org"})),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert!(!res.text.contains("token"), "no token in the answer: {}", res.text);

    let mail = app.mailer.wait_for("frank@example.org").await;
    assert_eq!(mail.subject, "Your OllamaNet account");
    let token = reset_token(&mail.body);
    // The unknown password refuses every guess like a wrong one, not with an error.
    for guess in ["", PASSWORD, "frank"] {
        app.login("frank", guess).await.assert_problem(401, "invalid_credentials");
    }
    let reset = app.post("/api/auth/password/reset", &json!({"token": token, "new_password": PASSWORD})).await;
    assert_eq!(reset.status, 204, "{}", reset.text);
    assert_eq!(app.login("frank", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn admins_update_username_and_email_with_the_uniqueness_rules() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let admin = app.admin().await;
    let (other, _) = app.new_user().await;
    let (user, session) = app.new_user().await;
    let path = user_path(session.user_id, "");
    let patch = |body: Value| {
        let (app, admin, path) = (&app, &admin, path.clone());
        async move { admin_call(app, admin, Method::PATCH, &path, Some(body)).await }
    };

    let dup = patch(json!({"email": other.email.to_uppercase()})).await;
    dup.assert_problem(409, "email_taken");
    assert_eq!(dup.field_errors(), vec![("email".to_owned(), "email_taken".to_owned())]);
    patch(json!({"username": other.username.to_uppercase()})).await.assert_problem(409, "username_taken");
    let res = patch(json!({"roles": ["Admin"]})).await;
    res.assert_problem(422, "invalid_body");
    assert_eq!(res.field_errors(), vec![("roles".to_owned(), "unknown_field".to_owned())]);
    let res = patch(json!({"email": "not an address", "username": "-bad"})).await;
    assert_eq!(res.field_errors().len(), 2, "{}", res.text);
    assert_eq!(app.me(&session.access).await.status, 200, "refused changes change nothing");

    let renamed = patch(json!({"username": "Renamed"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["username"], "Renamed");
    assert_eq!(app.me(&session.access).await.status, 200, "a new username leaves tokens alone");

    let moved = patch(json!({"email": "Moved@Example.org"})).await;
    assert_eq!(moved.body["email"], "moved@example.org");
    app.me(&session.access).await.assert_problem(401, "token_revoked");
    assert_eq!(app.login("moved@example.org", PASSWORD).await.status, 200);
    app.login(&user.email, PASSWORD).await.assert_problem(401, "invalid_credentials");

    let audit = events.expect(|e| e.data["action"] == "user.update" && e.data["after"].get("email").is_some()).await;
    assert_eq!(audit.data["before"], json!({"email": user.email}));
    assert_eq!(audit.data["after"], json!({"email": "moved@example.org"}));
    let unchanged = patch(json!({"email": "moved@example.org"})).await;
    assert_eq!(unchanged.status, 200);
    let nobody = user_path(Uuid::now_v7(), "");
    admin_call(&app, &admin, Method::PATCH, &nobody, Some(json!({"username": "ghost"})))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn a_lock_ends_access_at_once_and_an_unlock_restores_sign_in() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;
    let key = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "cli"}))).await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&session.access).await.status, 200, "working, and its state cached");
    assert_eq!(app.me(&key).await.status, 200);

    let lock = user_path(session.user_id, "/lock");
    let res = admin_call(&app, &admin, Method::POST, &lock, Some(json!({"minutes": 60}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.body["locked_until"].is_string());

    assert_eq!(app.me(&session.access).await.status, 401);
    app.me(&key).await.assert_problem(401, "account_disabled");
    let intro = app.post("/api/auth/introspect", &json!({"token": key})).await;
    assert_eq!(intro.body["active"], false);
    app.login(&user.username, PASSWORD).await.assert_problem(403, "account_locked");
    app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");

    // A password reset does not lift an admin's lock.
    app.post("/api/auth/password/forgot", &json!({"email": user.email})).await;
    let token = reset_token(&app.mailer.wait_for(&user.email).await.body);
    let reset =
        app.post("/api/auth/password/reset", &json!({"token": token, "new_password": "another long phrase"})).await;
    assert_eq!(reset.status, 204);
    app.login(&user.username, "another long phrase").await.assert_problem(403, "account_locked");

    let res = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/unlock"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["locked_until"], Value::Null);
    let back = app.login(&user.username, "another long phrase").await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(app.me(&key).await.status, 200, "API keys work again");
}

#[tokio::test]
async fn locks_are_bounded_and_until_works() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;
    let lock = user_path(session.user_id, "/lock");
    let send = |body: Value| {
        let (app, admin, lock) = (&app, &admin, lock.clone());
        async move { admin_call(app, admin, Method::POST, &lock, Some(body)).await }
    };

    for (body, field) in [
        (json!({"minutes": 0}), "minutes"),
        (json!({"minutes": 525_601}), "minutes"),
        (json!({}), "minutes"),
        (json!({"minutes": 5, "until": "2999-01-01T00:00:00Z"}), "minutes"),
        (json!({"until": "2000-01-01T00:00:00Z"}), "until"),
        (json!({"until": "2999-01-01T00:00:00Z"}), "until"),
    ] {
        let res = send(body.clone()).await;
        res.assert_problem(422, "validation_failed");
        assert_eq!(res.field_errors()[0].0, field, "{body}");
    }
    send(json!({"until": "tomorrow"})).await.assert_problem(422, "invalid_body");
    send(json!({"minutes": -5})).await.assert_problem(422, "invalid_body");
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "refused locks lock nothing");

    let until = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).replace_nanosecond(0).unwrap();
    let until = until.format(&time::format_description::well_known::Rfc3339).unwrap();
    let res = send(json!({ "until": until })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["locked_until"], until.as_str());
    let retry: u64 = app.login(&user.username, PASSWORD).await.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 86_400, "{retry}");
}

#[tokio::test]
async fn an_unlock_clears_a_lockout_after_failed_sign_ins() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;
    for _ in 0..3 {
        app.login(&user.username, "wrong password here").await;
    }
    app.login(&user.username, PASSWORD).await.assert_problem(429, "login_throttled");
    let details = admin_call(&app, &admin, Method::GET, &user_path(session.user_id, ""), None).await;
    assert!(details.body["locked_until"].is_string(), "{}", details.text);
    assert_eq!(details.body["failed_logins"], 3, "{}", details.text);
    assert_eq!(app.me(&session.access).await.status, 200, "a lockout leaves live tokens alone");

    let res = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/unlock"), None).await;
    assert_eq!((res.body["locked_until"].clone(), res.body["failed_logins"].clone()), (Value::Null, json!(0)));
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200);
}

#[tokio::test]
async fn deactivation_ends_access_until_activation() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;
    assert_eq!(app.me(&session.access).await.status, 200);

    let res = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/deactivate"), None).await;
    assert_eq!((res.status, &res.body["active"]), (200, &json!(false)), "{}", res.text);
    assert_eq!(app.me(&session.access).await.status, 401);
    app.login(&user.username, PASSWORD).await.assert_problem(403, "account_inactive");
    app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");
    let again = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/deactivate"), None).await;
    assert_eq!(again.status, 200, "idempotent");

    let res = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/activate"), None).await;
    assert_eq!((res.status, &res.body["active"]), (200, &json!(true)));
    let fresh = app.login(&user.username, PASSWORD).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(app.me(&Session::from(&fresh).access).await.status, 200);
}

#[tokio::test]
async fn soft_delete_then_purge_removes_the_account_and_announces_it() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;
    let key = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "cli"}))).await;
    let key = key.body["key"].as_str().unwrap().to_owned();
    let (details, purge) = (user_path(session.user_id, ""), user_path(session.user_id, "/purge"));

    admin_call(&app, &admin, Method::POST, &purge, None).await.assert_problem(409, "user_not_deleted");
    assert_eq!(app.me(&session.access).await.status, 200);

    let res = admin_call(&app, &admin, Method::DELETE, &details, None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(app.me(&session.access).await.status, 401);
    assert_eq!(app.me(&key).await.status, 401);
    app.login(&user.username, PASSWORD).await.assert_problem(401, "invalid_credentials");
    app.refresh(&session.refresh).await.assert_problem(401, "invalid_refresh_token");
    let seen = admin_call(&app, &admin, Method::GET, &details, None).await;
    assert!(seen.body["deleted_at"].is_string(), "{}", seen.text);
    assert_eq!(admin_call(&app, &admin, Method::DELETE, &details, None).await.status, 204, "idempotent");
    for (method, path, body) in [
        (Method::PATCH, details.clone(), Some(json!({"username": "zombie"}))),
        (Method::POST, user_path(session.user_id, "/lock"), Some(json!({"minutes": 5}))),
        (Method::POST, user_path(session.user_id, "/activate"), None),
        (Method::PUT, user_path(session.user_id, "/roles"), Some(json!({"roles": ["Admin"]}))),
        (Method::POST, user_path(session.user_id, "/password-reset"), None),
    ] {
        admin_call(&app, &admin, method, &path, body).await.assert_problem(409, "user_deleted");
    }

    let res = admin_call(&app, &admin, Method::POST, &purge, None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    admin_call(&app, &admin, Method::GET, &details, None).await.assert_problem(404, "not_found");
    admin_call(&app, &admin, Method::POST, &purge, None).await.assert_problem(404, "not_found");
    app.post("/api/auth/introspect", &json!({"token": session.access})).await.assert_problem(401, "invalid_token");
    let deleted = events.expect(|e| e.kind == "user.deleted").await;
    assert_eq!(deleted.data, json!({"user_id": session.user_id}));
    assert_eq!(deleted.source, "auth");
    let audit = events.expect(|e| e.data["action"] == "user.purge").await;
    assert_eq!(audit.data["before"]["username"], user.username.as_str());
    assert!(audit.data.get("after").is_none());

    // The name and address are free again.
    assert_eq!(app.register(&user).await.status, 201);
}

#[tokio::test]
async fn an_admin_cannot_lock_themselves_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (method, action, body) in [
        (Method::POST, "/lock", Some(json!({"minutes": 5}))),
        (Method::POST, "/deactivate", None),
        (Method::DELETE, "", None),
        (Method::POST, "/purge", None),
        (Method::PUT, "/roles", Some(json!({"roles": ["User"]}))),
        (Method::PUT, "/roles", Some(json!({"roles": []}))),
    ] {
        admin_call(&app, &admin, method, &user_path(admin.user_id, action), body)
            .await
            .assert_problem(409, "self_lockout");
    }
    let me = app.me(&admin.access).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["roles"], json!(["Admin", "User"]));
    let keep = json!({"roles": ["admin", "User", "Research"]});
    admin_call(&app, &admin, Method::POST, "/api/admin/roles", Some(json!({"name": "Research"}))).await;
    let res = admin_call(&app, &admin, Method::PUT, &user_path(admin.user_id, "/roles"), Some(keep)).await;
    assert_eq!(res.status, 200, "keeping Admin is fine: {}", res.text);

    // Another admin may act on this one.
    let other = app.admin().await;
    let res = admin_call(&app, &other, Method::POST, &user_path(admin.user_id, "/deactivate"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
}

#[tokio::test]
async fn an_admin_password_reset_mails_only_the_user() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (user, session) = app.new_user().await;

    let res = admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/password-reset"), None).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body, json!({"status": "accepted"}));
    let mail = app.mailer.wait_for(&user.email).await;
    let token = reset_token(&mail.body);
    assert!(!res.text.contains(&token));
    assert_eq!(app.login(&user.username, PASSWORD).await.status, 200, "the old password works until reset");
    let reset =
        app.post("/api/auth/password/reset", &json!({"token": token, "new_password": "brand new phrase"})).await;
    assert_eq!(reset.status, 204);
    assert_eq!(app.login(&user.username, "brand new phrase").await.status, 200);

    admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/deactivate"), None).await;
    admin_call(&app, &admin, Method::POST, &user_path(session.user_id, "/password-reset"), None)
        .await
        .assert_problem(409, "user_inactive");
    admin_call(&app, &admin, Method::POST, &user_path(Uuid::now_v7(), "/password-reset"), None)
        .await
        .assert_problem(404, "not_found");
}

/// Every admin route, with a body it accepts.
fn admin_routes(target: Uuid) -> Vec<(Method, String, Option<Value>)> {
    let user = |action: &str| user_path(target, action);
    vec![
        (Method::GET, "/api/admin/users".into(), None),
        (Method::POST, "/api/admin/users".into(), Some(json!({"username": "mallory", "email": "m@example.org"}))),
        (Method::GET, user(""), None),
        (Method::PATCH, user(""), Some(json!({"username": "hijacked"}))),
        (Method::DELETE, user(""), None),
        (Method::POST, user("/purge"), None),
        (Method::POST, user("/lock"), Some(json!({"minutes": 5}))),
        (Method::POST, user("/unlock"), None),
        (Method::POST, user("/activate"), None),
        (Method::POST, user("/deactivate"), None),
        (Method::PUT, user("/roles"), Some(json!({"roles": ["Admin", "User"]}))),
        (Method::POST, user("/password-reset"), None),
        (Method::GET, "/api/admin/roles".into(), None),
        (Method::POST, "/api/admin/roles".into(), Some(json!({"name": "Mine"}))),
        (Method::DELETE, "/api/admin/roles/User".into(), None),
    ]
}

#[tokio::test]
async fn only_admins_reach_the_admin_routes() {
    let app = TestApp::spawn().await;
    let (user, session) = app.new_user().await;
    let (_, victim) = app.new_user().await;
    let key = app.call(Method::POST, "/api/auth/keys", &session.access, Some(&json!({"name": "k"}))).await;
    let key = key.body["key"].as_str().unwrap().to_owned();

    for target in [victim.user_id, session.user_id] {
        for (method, path, body) in admin_routes(target) {
            for credential in [&session.access, &key] {
                let res = app.call(method.clone(), &path, credential, body.as_ref()).await;
                res.assert_problem(403, "forbidden");
            }
            let mut anonymous = app.request(method.clone(), &path);
            if let Some(body) = &body {
                anonymous = anonymous.json(body);
            }
            app.send(anonymous).await.assert_problem(401, "unauthenticated");
            // A forged identity header is no credential.
            let forged =
                app.request(method, &path).header("x-user-roles", "Admin").header("x-user-id", target.to_string());
            app.send(forged).await.assert_problem(401, "unauthenticated");
        }
    }
    // Nothing happened: both still sign in with their roles.
    assert_eq!(app.me(&victim.access).await.body["roles"], json!(["User"]));
    let me = app.login(&user.username, PASSWORD).await;
    assert_eq!(me.body["user"]["roles"], json!(["User"]));
    assert!(app.mailer.sent().is_empty());
}

#[tokio::test]
async fn bad_input_on_admin_routes_is_a_problem_not_a_crash() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, user) = app.new_user().await;

    for (method, path, body) in admin_routes(user.user_id) {
        let bad_id = path.replace(&user.user_id.to_string(), "not-a-uuid");
        if bad_id != path {
            admin_call(&app, &admin, method.clone(), &bad_id, body.clone()).await.assert_problem(404, "not_found");
        }
        if body.is_some() {
            let raw = app
                .request(method.clone(), &path)
                .bearer_auth(&admin.access)
                .header("content-type", "application/json")
                .body("{nope");
            app.send(raw).await.assert_problem(400, "malformed_json");
            let extra = admin_call(&app, &admin, method, &path, Some(json!({"is_admin": true}))).await;
            assert!(matches!(extra.status, 422), "{path}: {}", extra.text);
            assert!(extra.field_errors().iter().any(|(f, c)| f == "is_admin" && c == "unknown_field"), "{path}");
        }
    }
    let res = admin_call(&app, &admin, Method::DELETE, "/api/admin/roles/%00%ff", None).await;
    assert_eq!(res.status / 100, 4, "{}", res.text);
    assert_eq!(app.me(&user.access).await.status, 200);
}

type Step = (Method, &'static str, Option<Value>, &'static str, Value, Value);

#[tokio::test]
async fn every_admin_action_is_audited_with_its_actor_and_no_secrets() {
    let app = TestApp::spawn().await;
    let events = EventLog::subscribe(&app).await;
    let admin = app.admin().await;
    let admin_name = username_of(&app, &admin).await;
    let res = app
        .send(
            app.request(Method::POST, "/api/admin/users")
                .bearer_auth(&admin.access)
                .header("x-request-id", "audit-trail-1")
                .json(&json!({"username": "grace", "email": "grace@example.org", "password": PASSWORD})),
        )
        .await;
    let id: Uuid = res.body["id"].as_str().unwrap().parse().unwrap();
    // (method, path suffix, body, action, expected before, expected after; null: not checked)
    let steps: Vec<Step> = vec![
        (
            Method::PATCH,
            "",
            Some(json!({"username": "grace2"})),
            "user.update",
            json!({"username": "grace"}),
            json!({"username": "grace2"}),
        ),
        (Method::POST, "/lock", Some(json!({"minutes": 10})), "user.lock", json!({"locked_until": null}), Value::Null),
        (Method::POST, "/unlock", None, "user.unlock", Value::Null, json!({"locked_until": null})),
        (Method::POST, "/deactivate", None, "user.deactivate", json!({"active": true}), json!({"active": false})),
        (Method::POST, "/activate", None, "user.activate", json!({"active": false}), json!({"active": true})),
        (
            Method::PUT,
            "/roles",
            Some(json!({"roles": ["Admin"]})),
            "user.set_roles",
            json!({"roles": ["User"]}),
            json!({"roles": ["Admin"]}),
        ),
        (Method::POST, "/password-reset", None, "user.password_reset", Value::Null, Value::Null),
        (Method::DELETE, "", None, "user.delete", json!({"deleted_at": null}), Value::Null),
        (Method::POST, "/purge", None, "user.purge", Value::Null, Value::Null),
    ];
    for (method, action, body, name, before, after) in steps {
        let res = admin_call(&app, &admin, method, &user_path(id, action), body).await;
        assert!(res.status < 300, "{name}: {}", res.text);
        let event = events.expect(|e| e.kind == "admin.audited" && e.data["action"] == name).await;
        let data = &event.data;
        assert_eq!(event.source, "auth");
        assert_eq!(data["actor_id"], admin.user_id.to_string(), "{name}");
        assert_eq!(data["actor"], admin_name.as_str());
        assert_eq!(
            (data["target_type"].as_str(), data["target_id"].as_str()),
            (Some("user"), Some(id.to_string().as_str()))
        );
        // Only the changed fields, where the expected side is spelled out.
        if !before.is_null() {
            assert_eq!(data["before"], before, "{name}");
        }
        if !after.is_null() {
            assert_eq!(data["after"], after, "{name}");
        }
        let text = data.to_string();
        for secret in ["argon2", "password_hash", "token_version", PASSWORD] {
            assert!(!text.contains(secret), "{name} leaks {secret}: {text}");
        }
    }
    let lock = events.expect(|e| e.data["action"] == "user.lock").await;
    let keys: HashSet<&str> = lock.data["after"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["locked_until"]));
    let create = events.expect(|e| e.data["action"] == "user.create").await;
    assert_eq!(create.data["request_id"], "audit-trail-1");
    let reset = events.expect(|e| e.data["action"] == "user.password_reset").await;
    let token = reset_token(&app.mailer.wait_for("grace@example.org").await.body);
    assert!(!reset.data.to_string().contains(&token));
    // Refused and empty actions leave no record.
    assert_eq!(events.all(|e| e.kind == "admin.audited").len(), 10);
}
