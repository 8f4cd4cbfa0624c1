//! The profile and explore pages through the gateway: a user changes their account, password and
//! API keys from their browser (and nobody else can); anyone browses the catalog as their roles
//! allow, by addresses that work without JavaScript.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, Mode, PASSWORD, eventually};
use crate::web::{Browser, signed_up};

const NEW_PASSWORD: &str = "a brand new passphrase here";

async fn sign_in(b: &mut Browser<'_>, login: &str, password: &str) -> StatusCode {
    b.get("/login").await;
    let status = b.post("/login", &[("login", login), ("password", password)]).await.0;
    b.get("/chat").await;
    status
}

async fn login(d: &Deployment, login: &str, password: &str) -> (StatusCode, Value) {
    d.call(Method::POST, "/api/auth/login", None, Some(json!({"login": login, "password": password}))).await
}

/// Whether the form field `id` is marked invalid, with its message shown.
fn invalid(page: &str, id: &str) -> bool {
    page.contains(&format!("aria-describedby=\"{id}-error\"")) && page.contains(&format!("id=\"{id}-error\""))
}

#[tokio::test]
async fn web_profile_renames_and_changes_the_email_address() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = signed_up(&d, "renamer").await;
    d.register("taken").await;
    let (status, _, page) = b.get("/profile").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("value=\"renamer\"") && page.contains("value=\"renamer@example.com\""), "{page}");

    let account = |username: &'static str, email: &'static str, password: &'static str| {
        [("username", username), ("email", email), ("current_password", password)]
    };
    let (status, location, body) = b.post("/profile/account", &account("renamed", "renamer@example.com", "")).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/profile?done=account"), "{body}");
    let (_, _, page) = b.get(&location).await;
    assert!(page.contains("Your account is saved.") && page.contains("value=\"renamed\""), "{page}");
    assert!(page.contains("class=\"who\">renamed<"), "the header shows the new name at once: {page}");

    // Refusals are shown next to their field, with what was typed kept.
    let (status, _, page) = b.post("/profile/account", &account("renamed", "new@example.com", "")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid(&page, "account-current") && page.contains("value=\"new@example.com\""), "{page}");
    let (status, _, page) =
        b.post("/profile/account", &account("renamed", "new@example.com", "not my password at all")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(invalid(&page, "account-current") && page.contains("the current password is wrong"), "{page}");
    assert!(!invalid(&page, "email") && !invalid(&page, "username"), "{page}");
    let (status, _, page) = b.post("/profile/account", &account("taken", "renamer@example.com", "")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(invalid(&page, "username") && page.contains("value=\"taken\""), "{page}");
    let (status, _, page) = b.post("/profile/account", &account("no way", "not-an-address", "")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid(&page, "username") && invalid(&page, "email"), "{page}");

    let (status, location, _) = b.post("/profile/account", &account("renamed", "new@example.com", PASSWORD)).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/profile?done=account"));
    let (status, me) = login(&d, "new@example.com", PASSWORD).await;
    assert_eq!((status, me["user"]["username"].as_str()), (StatusCode::OK, Some("renamed")), "{me}");
    assert_eq!(login(&d, "renamer", PASSWORD).await.0, StatusCode::UNAUTHORIZED, "the old name is gone");
}

#[tokio::test]
async fn web_profile_password_change_signs_out_elsewhere_but_not_here() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = signed_up(&d, "changer").await;
    let mut elsewhere = Browser::new(&d);
    assert_eq!(sign_in(&mut elsewhere, "changer", PASSWORD).await, StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.get("/profile").await.0, StatusCode::OK);
    b.get("/profile").await;

    let change = |current: &'static str, new: &'static str| [("current_password", current), ("new_password", new)];
    let (status, _, page) = b.post("/profile/password", &change("wrong password here", NEW_PASSWORD)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(invalid(&page, "password-current") && !invalid(&page, "password-new"), "{page}");
    let (status, _, page) = b.post("/profile/password", &change(PASSWORD, "short")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid(&page, "password-new") && !invalid(&page, "password-current"), "{page}");
    assert!(!page.contains(PASSWORD), "passwords are never written back into the page");
    assert_eq!(login(&d, "changer", PASSWORD).await.0, StatusCode::OK, "refused changes change nothing");

    let (status, location, body) = b.post("/profile/password", &change(PASSWORD, NEW_PASSWORD)).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/profile?done=password"), "{body}");
    let (status, _, page) = b.get(&location).await;
    assert_eq!(status, StatusCode::OK, "this browser is still signed in: {page}");
    assert!(page.contains("Your password is changed"), "{page}");
    let (status, location, _) = elsewhere.get("/profile").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"), "the other session is over");
    assert!(!elsewhere.cookies.contains_key("ollamanet_session"));

    assert_eq!(login(&d, "changer", PASSWORD).await.0, StatusCode::UNAUTHORIZED, "the old password");
    assert_eq!(login(&d, "changer", NEW_PASSWORD).await.0, StatusCode::OK, "the new one");
    assert_eq!(sign_in(&mut elsewhere, "changer", NEW_PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn web_profile_api_keys_are_shown_once_work_and_only_their_owner_revokes_them() {
    let d = Deployment::start(Mode::AllInOne).await;
    let mut b = signed_up(&d, "keyholder").await;
    let (_, _, page) = b.get("/profile").await;
    assert!(page.contains("No keys yet."), "{page}");

    let (status, _, created) = b.post("/profile/keys", &[("name", "laptop <cli>"), ("expires_in_days", "30")]).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created.split("id=\"secret\">").nth(1).and_then(|s| s.split('<').next()).unwrap().to_owned();
    assert!(secret.starts_with("onk_") && secret.len() > 20, "{secret}");
    let (status, me) = d.call(Method::GET, "/api/auth/me", Some(&secret), None).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("keyholder")), "a working key: {me}");

    let (_, _, page) = b.get("/profile").await;
    assert!(!page.contains(&secret), "the secret is shown only on its creation: {page}");
    assert!(page.contains(&secret[..12]) && page.contains("laptop &#60;cli&#62;"), "its prefix, its name: {page}");
    let id = page.split("action=\"/profile/keys/").nth(1).and_then(|s| s.split('/').next()).unwrap().to_owned();

    // The answer with a secret is never kept by a cache.
    let jar: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let res = d
        .client
        .post(d.at("/profile/keys"))
        .header(header::COOKIE, jar.join("; "))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("name=second&csrf={}", b.csrf()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");

    let (status, _, page) = b.post("/profile/keys", &[("name", ""), ("expires_in_days", "9999")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid(&page, "key-name") && invalid(&page, "key-days"), "{page}");

    // Someone else cannot revoke it, nor can a forged form.
    let revoke = format!("/profile/keys/{id}/revoke");
    let mut mallory = signed_up(&d, "mallory").await;
    let (status, _, page) = mallory.post(&revoke, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    let forged = [("csrf", "A".repeat(43).leak() as &str)];
    assert_eq!(b.send(Method::POST, &revoke, Some(&forged)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&secret), None).await.0, StatusCode::OK, "still works");

    let (status, location, _) = b.post(&revoke, &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/profile?done=revoked"));
    assert_eq!(d.call(Method::GET, "/api/auth/me", Some(&secret), None).await.0, StatusCode::UNAUTHORIZED);
    let (_, _, page) = b.get(&location).await;
    assert!(page.contains("The key is revoked.") && !page.contains("laptop"), "{page}");
    assert!(page.contains("second"), "the other key stays: {page}");
}

async fn create_model(d: &Deployment, admin: &str, body: Value) {
    let (status, model) = d.call(Method::POST, "/api/admin/models", Some(admin), Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}: {model}");
}

async fn tag(d: &Deployment, admin: &str, name: &str, models: &[&str]) {
    let (status, tag) = d.call(Method::POST, "/api/admin/tags", Some(admin), Some(json!({"name": name}))).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    let path = format!("/api/admin/tags/{}/models", tag["id"].as_str().unwrap());
    for model in models {
        let (status, body) = d.call(Method::POST, &path, Some(admin), Some(json!({"model": model}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
}

/// The models a catalog page lists, in order.
fn listed(page: &str) -> Vec<&str> {
    page.split("<h2><a href=\"/explore/").skip(1).map(|s| s.split('"').next().unwrap()).collect()
}

#[tokio::test]
async fn web_explore_searches_filters_by_tag_and_installed_and_pages() {
    let node = FakeOllama::start("hello", &["smollm2:135m"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let admin = d.admin_token("root").await;
    // An empty catalog says how models get there.
    let (_, _, page) = Browser::new(&d).get("/explore").await;
    assert!(page.contains("The catalog describes no model yet"), "{page}");
    create_model(&d, &admin, json!({"name": "smollm2:135m", "description": "A small model", "family": "llama"})).await;
    create_model(&d, &admin, json!({"name": "qwen2.5-coder:7b", "description": "Writes code", "family": "qwen2"}))
        .await;
    tag(&d, &admin, "Small", &["smollm2:135m"]).await;
    tag(&d, &admin, "Code", &["qwen2.5-coder:7b"]).await;
    tag(&d, &admin, "<b>bold</b>", &["qwen2.5-coder:7b"]).await;

    // Anyone may browse, with a header that offers to sign in.
    let mut b = Browser::new(&d);
    let (status, _, page) = b.get("/explore").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(listed(&page), ["qwen2.5-coder:7b", "smollm2:135m"], "{page}");
    assert!(page.contains("href=\"/login\"") && !page.contains("Sign out"), "{page}");
    assert!(!page.contains("<b>bold</b>"), "tag names are escaped: {page}");

    for (query, expected) in [
        ("?q=code", vec!["qwen2.5-coder:7b"]),
        ("?q=SMALL", vec!["smollm2:135m"]),
        ("?q=nothing", vec![]),
        ("?tags=Small", vec!["smollm2:135m"]),
        ("?tags=Small%2CCode", vec![]),
        ("?q=writes&tags=code", vec!["qwen2.5-coder:7b"]),
    ] {
        let (status, _, page) = b.get(&format!("/explore{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(listed(&page), expected, "{query}");
    }
    // The tags are links: one adds its filter, and the same link on the filtered page takes it away.
    assert!(page.contains("href=\"/explore?tags=Small\""), "{page}");
    let (_, _, filtered) = b.get("/explore?tags=Small").await;
    assert!(filtered.contains("href=\"/explore\" class=\"on\" aria-current=\"true\""), "{filtered}");
    assert!(filtered.contains("href=\"/explore?tags=Small%2CCode\""), "{filtered}");

    eventually("the engine's models reported to explore", async || {
        let (_, page) = d.call(Method::GET, "/api/explore/models?installed=true", None, None).await;
        page["items"].as_array().is_some_and(|items| items.len() == 1)
    })
    .await;
    let (_, _, page) = b.get("/explore?installed=true").await;
    assert_eq!(listed(&page), ["smollm2:135m"], "{page}");
    assert!(page.contains("value=\"true\" checked") && page.contains("llama · installed"), "{page}");

    // Pages: the filters are kept from one page to the next.
    for n in 0..21 {
        create_model(&d, &admin, json!({"name": format!("bulk-{n:02}"), "description": "One of many"})).await;
    }
    let (_, _, first) = b.get("/explore?q=many").await;
    assert_eq!(listed(&first).len(), 20, "{first}");
    let next = first.split("href=\"").find(|s| s.contains("rel=\"next\"")).unwrap().split('"').next().unwrap();
    let next = next.replace("&#38;", "&").replace("&amp;", "&");
    assert!(next.starts_with("/explore?q=many&cursor="), "{next}");
    let (status, _, second) = b.get(&next).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(listed(&second), ["bulk-20:latest"], "{second}");
    assert!(!second.contains("rel=\"next\"") && second.contains("First page"), "{second}");
}

#[tokio::test]
async fn web_explore_hides_a_restricted_model_from_users_without_its_role() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    create_model(&d, &admin, json!({"name": "open"})).await;
    create_model(&d, &admin, json!({"name": "secret", "access": {"public": false, "roles": ["Research"]}})).await;

    let mut anonymous = Browser::new(&d);
    let mut user = signed_up(&d, "ulla").await;
    for b in [&mut anonymous, &mut user] {
        let (_, _, page) = b.get("/explore").await;
        assert_eq!(listed(&page), ["open:latest"], "{page}");
        let (status, _, page) = b.get("/explore/secret:latest").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
        assert!(!page.contains("Research"), "{page}");
    }

    // With the role, the same user sees it.
    let (status, body) =
        d.call(Method::POST, "/api/admin/roles", Some(&admin), Some(json!({"name": "Research"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, users) = d.call(Method::GET, "/api/admin/users?q=ulla", Some(&admin), None).await;
    let roles = format!("/api/admin/users/{}/roles", users["items"][0]["id"].as_str().unwrap());
    let (status, body) = d.call(Method::PUT, &roles, Some(&admin), Some(json!({"roles": ["User", "Research"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sign_in(&mut user, "ulla", PASSWORD).await, StatusCode::SEE_OTHER);
    let (_, _, page) = user.get("/explore").await;
    assert_eq!(listed(&page), ["open:latest", "secret:latest"], "{page}");
    assert_eq!(user.get("/explore/secret:latest").await.0, StatusCode::OK);
}

#[tokio::test]
async fn web_explore_model_page_renders_its_description_inert_and_starts_a_conversation() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let description = "Made for **reasoning**.\n\n<script>alert(1)</script>\n\nSee [x](javascript:alert(2)).\n\n\
                       ![chart](https://evil.example/chart?q=1)";
    create_model(
        &d,
        &admin,
        json!({"name": "hf.co/org/thinker:q4", "description": description, "family": "llama",
               "parameter_count": 1_500_000_000_i64, "capabilities": ["completion", "thinking"]}),
    )
    .await;
    tag(&d, &admin, "Reasoning", &["hf.co/org/thinker:q4"]).await;

    let mut anonymous = Browser::new(&d);
    let (_, _, list) = anonymous.get("/explore").await;
    assert_eq!(listed(&list), ["hf.co/org/thinker:q4"], "{list}");
    assert!(list.contains("<strong>reasoning</strong>") && !list.contains("<script>alert"), "{list}");
    let (status, _, page) = anonymous.get("/explore/hf.co/org/thinker:q4").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<strong>reasoning</strong>"), "the description's Markdown is rendered: {page}");
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>alert"), "{page}");
    assert!(page.contains("See <a href=\"#\" rel=\"noopener noreferrer nofollow\">x</a>"), "{page}");
    assert!(!page.contains("href=\"javascript:"), "{page}");
    assert!(!page.contains("<img src=\"https://evil"), "no image from elsewhere: {page}");
    assert!(
        page.contains("<a href=\"https://evil.example/chart?q=1\" rel=\"noopener noreferrer nofollow\">chart</a>"),
        "{page}"
    );
    for fact in ["llama", "1.5B", "completion, thinking", "Reasoning", "<dt>Installed</dt>"] {
        assert!(page.contains(fact), "{fact}: {page}");
    }
    assert!(!page.contains("action=\"/chat\"") && page.contains("href=\"/login\""), "sign in to talk: {page}");
    assert_eq!(anonymous.get("/explore/no-such-model").await.0, StatusCode::NOT_FOUND);
    let (_, doc) = d.call(Method::GET, "/openapi.json", None, None).await;
    assert!(doc["paths"]["/api/explore/models/{name}"]["get"].is_object(), "the API that serves it is documented");

    let mut b = signed_up(&d, "talker").await;
    let (_, _, page) = b.get("/explore/hf.co/org/thinker:q4").await;
    assert!(page.contains("name=\"model\" value=\"hf.co/org/thinker:q4\""), "{page}");
    let (status, conversation, body) =
        b.post("/chat", &[("model", "hf.co/org/thinker:q4"), ("title", "Thinking")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, page) = b.get(&conversation).await;
    assert!(page.contains("Thinking") && page.contains("hf.co/org/thinker:q4"), "{page}");
}
