//! The administration pages through the gateway, as an admin's browser uses them: users locked,
//! reactivated and given roles, the catalog edited (and explore showing it), tags, engines with
//! a pull's progress streamed, the audit log of it all; and the same pages refused to users.

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::engine::{engine_config, import_tiny};
use crate::fake_ollama::{FakeOllama, config_with_nodes};
use crate::helpers::{Deployment, Mode, PASSWORD, eventually, wait_for_nodes};
use crate::web::Browser;

/// A browser signed in as a new administrator, and the administrator's API token.
async fn admin_browser<'a>(d: &'a Deployment, name: &str) -> (Browser<'a>, String) {
    let token = d.admin_token(name).await;
    let mut b = Browser::new(d);
    b.get("/login").await;
    let (status, location, page) = b.post("/login", &[("login", name), ("password", PASSWORD)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/"), "{page}");
    b.get("/chat").await;
    (b, token)
}

/// A browser of a user who registered from the page.
async fn user_browser<'a>(d: &'a Deployment, name: &str) -> Browser<'a> {
    let mut b = Browser::new(d);
    b.get("/register").await;
    let email = format!("{name}@example.com");
    let (status, _, page) = b.post("/register", &[("username", name), ("email", &email), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    b.get("/chat").await;
    b
}

async fn user_id(d: &Deployment, admin: &str, name: &str) -> String {
    let (_, users) = d.call(Method::GET, &format!("/api/admin/users?q={name}"), Some(admin), None).await;
    users["items"].as_array().unwrap().iter().find(|u| u["username"] == name).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The user's record as the API has it.
async fn account(d: &Deployment, admin: &str, id: &str) -> Value {
    d.call(Method::GET, &format!("/api/admin/users/{id}"), Some(admin), None).await.1
}

/// Whether `page` shows `text` as text: escaped however the templates escape.
fn shows(page: &str, text: &str) -> bool {
    let numeric = text.replace('<', "&#60;").replace('>', "&#62;").replace('"', "&#34;").replace('\'', "&#39;");
    let named = text.replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#x27;");
    page.contains(&numeric) || page.contains(&named)
}

#[tokio::test]
async fn web_admin_locks_a_user_and_their_next_page_is_the_sign_in_page() {
    let d = Deployment::start(Mode::AllInOne).await;
    let (mut admin, token) = admin_browser(&d, "root").await;
    let mut lockee = user_browser(&d, "lockee").await;
    assert_eq!(lockee.get("/chat").await.0, StatusCode::OK);
    let id = user_id(&d, &token, "lockee").await;

    let (status, _, page) = admin.get("/chat").await;
    assert!(status == StatusCode::OK && page.contains("href=\"/admin\""), "the header leads admins here: {page}");
    let (status, _, page) = admin.get("/admin").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for section in ["/admin/users", "/admin/models", "/admin/tags", "/admin/engines", "/admin/audit", "/admin/usage"] {
        assert!(page.contains(&format!("href=\"{section}\"")), "{section}: {page}");
    }
    let (status, _, page) = admin.get("/admin/users?q=lock").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("href=\"/admin/users/{id}\"")) && page.contains("lockee@example.com"), "{page}");
    assert!(!page.contains("root@example.com"), "the search narrows: {page}");
    assert!(page.contains("class=\"table-scroll\""), "tables scroll sideways on a phone: {page}");

    let (status, location, page) = admin.post(&format!("/admin/users/{id}/lock"), &[("minutes", "30")]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/users/{id}?done=lock").as_str()),
        "{page}"
    );
    let (_, _, page) = admin.get(&location).await;
    assert!(
        page.contains("The user is locked") && page.contains("Locked until") && page.contains(">Unlock<"),
        "{page}"
    );
    assert!(account(&d, &token, &id).await["locked_until"].is_string());

    // The user's very next page: signed out, and signing in is refused.
    let (status, location, _) = lockee.get("/chat").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    lockee.get("/login").await;
    let (status, _, page) = lockee.post("/login", &[("login", "lockee"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("This account is locked"), "{page}");

    // An admin cannot lock themselves out: the page says so.
    let own = user_id(&d, &token, "root").await;
    let (status, _, page) = admin.post(&format!("/admin/users/{own}/lock"), &[("minutes", "30")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("role=\"alert\"") && page.contains("cannot lock, deactivate"), "{page}");
    assert!(account(&d, &token, &own).await["locked_until"].is_null());
    let (status, _, page) = admin.post(&format!("/admin/users/{id}/lock"), &[("minutes", "0")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a lock of no time is refused: {page}");
    assert!(page.contains("minutes"), "{page}");

    let (status, location, _) = admin.post(&format!("/admin/users/{id}/unlock"), &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, format!("/admin/users/{id}?done=unlock").as_str()));
    let (status, _, _) = lockee.post("/login", &[("login", "lockee"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "unlocked, the user signs in again");

    let (status, _, _) = admin.post(&format!("/admin/users/{id}/deactivate"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(account(&d, &token, &id).await["active"], false);
    assert_eq!(lockee.get("/chat").await.1, "/login", "a deactivated user is signed out too");
    let (_, _, page) = admin.get("/admin/users?status=inactive").await;
    assert!(page.contains("lockee@example.com") && !page.contains("root@example.com"), "{page}");
    let (status, _, _) = admin.post(&format!("/admin/users/{id}/activate"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(account(&d, &token, &id).await["active"], true);

    let (status, location, _) = admin.post(&format!("/admin/users/{id}/password-reset"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(admin.get(&location).await.2.contains("A mail with a link"));
    let mail = d.mail.as_ref().unwrap().wait_for("lockee@example.com").await;
    assert!(mail.body.contains("token="), "{mail:?}");

    // The audit page shows what the admin did to the user (the refused self-lock is not there).
    eventually("the changes in the audit log", async || {
        let (_, page) = d.call(Method::GET, &format!("/api/admin/audit?target_id={id}"), Some(&token), None).await;
        page["items"].as_array().is_some_and(|i| i.len() >= 5)
    })
    .await;
    let (status, _, page) = admin.get(&format!("/admin/audit?target_type=user&target_id={id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for action in ["user.lock", "user.unlock", "user.deactivate", "user.activate", "user.password_reset"] {
        assert!(page.contains(&format!("<td>{action} <span")), "{action}: {page}");
    }
    let (_, _, page) = admin.get(&format!("/admin/audit?target_id={own}")).await;
    assert!(page.contains("No entries."), "{page}");
}

#[tokio::test]
async fn web_admin_changes_a_users_roles_through_the_page() {
    let d = Deployment::start(Mode::AllInOne).await;
    let (mut admin, token) = admin_browser(&d, "root").await;
    let mut rolf = user_browser(&d, "rolf").await;
    let (status, _) = d.call(Method::POST, "/api/admin/roles", Some(&token), Some(json!({"name": "Research"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = user_id(&d, &token, "rolf").await;

    let (_, _, page) = admin.get(&format!("/admin/users/{id}")).await;
    assert!(page.contains("name=\"role\" value=\"Research\">"), "an unchecked box per role: {page}");
    assert!(page.contains("name=\"role\" value=\"User\" checked>"), "{page}");
    assert_eq!(rolf.get("/admin").await.0, StatusCode::FORBIDDEN);

    let form = [("role", "User"), ("role", "Research"), ("role", "Admin")];
    let (status, location, page) = admin.post(&format!("/admin/users/{id}/roles"), &form).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/users/{id}?done=roles").as_str()),
        "{page}"
    );
    let mut roles: Vec<String> = serde_json::from_value(account(&d, &token, &id).await["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, ["Admin", "Research", "User"]);
    let (_, _, page) = admin.get(&location).await;
    assert!(page.contains("The roles are saved") && page.contains("value=\"Research\" checked>"), "{page}");
    // The user's next page has the new roles: an admin now.
    let (status, _, page) = rolf.get("/admin").await;
    assert_eq!(status, StatusCode::OK, "{page}");

    let (status, _, _) = admin.post(&format!("/admin/users/{id}/roles"), &[("role", "User")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(account(&d, &token, &id).await["roles"], json!(["User"]));
    assert_eq!(rolf.get("/admin").await.0, StatusCode::FORBIDDEN, "and no longer");

    // Removing one's own Admin role is refused, with the reason.
    let own = user_id(&d, &token, "root").await;
    let (status, _, page) = admin.post(&format!("/admin/users/{own}/roles"), &[("role", "User")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("remove their own Admin role"), "{page}");
    let (_, me) = d.call(Method::GET, &format!("/api/admin/users/{own}"), Some(&token), None).await;
    assert!(me["roles"].as_array().unwrap().contains(&json!("Admin")));
}

/// Every administration page and form, as a user who is not an admin: refused, and nothing
/// changes. A signed-out visitor is sent to sign in; an admin's form with a foreign token is
/// refused too.
#[tokio::test]
async fn web_admin_pages_and_forms_refuse_non_admins() {
    let d = Deployment::start(Mode::AllInOne).await;
    let token = d.admin_token("root").await;
    let admin_id = user_id(&d, &token, "root").await;
    let (status, model) = d
        .call(Method::POST, "/api/admin/models", Some(&token), Some(json!({"name": "keep", "description": "as is"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    let (_, tag) = d.call(Method::POST, "/api/admin/tags", Some(&token), Some(json!({"name": "kept"}))).await;
    let tag = tag["id"].as_str().unwrap().to_owned();
    let mut user = user_browser(&d, "mallory").await;
    let (_, _, page) = user.get("/chat").await;
    assert!(!page.contains("href=\"/admin\""), "no way to the administration in a user's header");
    let user_self = user_id(&d, &token, "mallory").await;

    let pages = [
        "/admin".to_owned(),
        "/admin/users".to_owned(),
        "/admin/users?q=root".to_owned(),
        format!("/admin/users/{admin_id}"),
        "/admin/models".to_owned(),
        "/admin/models/keep:latest".to_owned(),
        "/admin/tags".to_owned(),
        "/admin/roles".to_owned(),
        "/admin/engines".to_owned(),
        "/admin/engines/local".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/usage".to_owned(),
    ];
    for path in &pages {
        let (status, _, page) = user.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {path}: {page}");
        assert!(page.contains("Administrators only") && !page.contains("as is"), "{path}: {page}");
    }
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/admin/users/{admin_id}/lock"), vec![("minutes", "60")]),
        (format!("/admin/users/{admin_id}/deactivate"), vec![]),
        (format!("/admin/users/{admin_id}/password-reset"), vec![]),
        (format!("/admin/users/{user_self}/roles"), vec![("role", "User"), ("role", "Admin")]),
        ("/admin/models".to_owned(), vec![("name", "evil"), ("public", "on")]),
        (
            "/admin/models/keep:latest".to_owned(),
            vec![("action", "save"), ("description", "defaced"), ("public", "on")],
        ),
        ("/admin/models/keep:latest".to_owned(), vec![("action", "delete")]),
        ("/admin/models/keep:latest".to_owned(), vec![("action", "tag"), ("tag", &tag)]),
        ("/admin/tags".to_owned(), vec![("name", "evil")]),
        (format!("/admin/tags/{tag}/rename"), vec![("name", "evil")]),
        (format!("/admin/tags/{tag}/delete"), vec![]),
        ("/admin/roles".to_owned(), vec![("name", "Evil")]),
        ("/admin/roles/User/delete".to_owned(), vec![]),
        ("/admin/engines/local/pull".to_owned(), vec![("model", "evil")]),
        ("/admin/engines/local/delete".to_owned(), vec![("model", "evil")]),
    ];
    for (path, fields) in &forms {
        let (status, _, page) = user.post(path, fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path}: {page}");
        let (status, _, _) = user.post_accepting(path, fields, "text/event-stream").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path} as the script");
    }
    let mut stranger = Browser::new(&d);
    for path in &pages {
        let (status, location, _) = stranger.get(path).await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"), "signed out: {path}");
    }

    // An admin's browser posting a form with another token (a forged form) is refused.
    let (mut admin, _) = admin_browser(&d, "second").await;
    let forged = [("minutes", "60"), ("csrf", "A".repeat(43).leak() as &str)];
    let (status, _, page) = admin.send(Method::POST, &format!("/admin/users/{user_self}/lock"), Some(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("Form expired"), "{page}");

    // Nothing changed.
    let root = account(&d, &token, &admin_id).await;
    assert!(root["locked_until"].is_null() && root["active"] == true, "{root}");
    assert_eq!(account(&d, &token, &user_self).await["roles"], json!(["User"]));
    assert!(account(&d, &token, &user_self).await["locked_until"].is_null());
    let (_, model) = d.call(Method::GET, "/api/admin/models/keep:latest", Some(&token), None).await;
    assert_eq!((model["description"].as_str(), &model["tags"]), (Some("as is"), &json!([])), "{model}");
    assert!(model.get("deleted_at").is_none(), "{model}");
    let (_, tags) = d.call(Method::GET, "/api/admin/tags", Some(&token), None).await;
    assert_eq!(tags.as_array().unwrap().len(), 1);
    assert_eq!(tags[0]["name"], "kept");
    let (status, _) = d.call(Method::GET, "/api/admin/models/evil", Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(d.mail.as_ref().unwrap().sent().iter().all(|m| m.to != "root@example.com"));
    let (_, roles) = d.call(Method::GET, "/api/admin/roles", Some(&token), None).await;
    let roles: Vec<&str> = roles["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(!roles.contains(&"Evil"), "{roles:?}");
}

/// The model as explore lists it to the holder of `token` (anonymous without), if it does.
async fn explored(d: &Deployment, token: Option<&str>, name: &str) -> Option<Value> {
    let (status, page) = d.call(Method::GET, "/api/explore/models", token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().iter().find(|m| m["name"] == name).cloned()
}

#[tokio::test]
async fn web_admin_catalog_edits_show_in_explore() {
    let d = Deployment::start(Mode::AllInOne).await;
    let (mut admin, _) = admin_browser(&d, "root").await;
    let user = d.user_token("ulla").await;

    let created = [("name", "Team/Coder:7B"), ("description", "First words"), ("public", "on")];
    let (status, location, page) = admin.post("/admin/models", &created).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/admin/models/team/coder:7b?done=create"),
        "{page}"
    );
    let (status, _, page) = admin.get(&location).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("The model is in the catalog") && page.contains("First words"), "{page}");
    let (status, _, page) = admin.post("/admin/models", &created).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a second model of the name: {page}");
    assert!(page.contains("role=\"alert\"") && page.contains("value=\"Team/Coder:7B\""), "the form is kept: {page}");
    let (_, _, page) = admin.get("/admin/models?q=coder").await;
    assert!(page.contains("href=\"/admin/models/team/coder:7b\""), "{page}");

    let model = "/admin/models/team/coder:7b";
    let edit = [
        ("action", "save"),
        ("description", "Writes <b>code</b>"),
        ("family", "Qwen2"),
        ("context_length", "32768"),
        ("languages", "en, fr"),
        ("capabilities", "completion,tools"),
        ("role", "User"),
    ];
    let (status, location, page) = admin.post(model, &edit).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/models/team/coder:7b?done=save"), "{page}");
    let (_, _, page) = admin.get(&location).await;
    assert!(shows(&page, "Writes <b>code</b>") && !page.contains("<b>code"), "escaped: {page}");
    assert!(page.contains("roles: user"), "{page}");
    let shown = explored(&d, Some(&user), "team/coder:7b").await.expect("explore lists it");
    assert_eq!(shown["description"], "Writes <b>code</b>");
    assert_eq!((shown["family"].as_str(), shown["context_length"].as_i64()), (Some("qwen2"), Some(32768)));
    assert_eq!((&shown["languages"], &shown["capabilities"]), (&json!(["en", "fr"]), &json!(["completion", "tools"])));
    assert_eq!(shown["access"], json!({"public": false, "roles": ["user"]}));
    assert_eq!(explored(&d, None, "team/coder:7b").await, None, "no longer public");

    let (status, _, page) = admin.post(model, &[("action", "save"), ("reference_link", "javascript:alert(1)")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("reference_link: an http(s) URL"), "the field is named: {page}");
    let (status, _, page) = admin.post(model, &[("action", "enrich")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("No engine has this model"), "{page}");

    // Tags: created, put on the model, renamed, taken off, deleted.
    let (status, location, _) = admin.post("/admin/tags", &[("name", "Coding")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/tags?done=create"));
    let (_, _, page) = admin.get(&location).await;
    let tag = page.split("action=\"/admin/tags/").nth(1).unwrap()[..36].to_owned();
    assert!(page.contains("The tag is created") && page.contains("Coding"), "{page}");
    let (status, _, page) = admin.post("/admin/tags", &[("name", "coding")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    let (status, _, _) = admin.post(model, &[("action", "tag"), ("tag", &tag)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = admin.post(&format!("/admin/tags/{tag}/rename"), &[("name", "Code")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let tags = |v: &Value| {
        v["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(tags(&explored(&d, Some(&user), "team/coder:7b").await.unwrap()), ["Code"]);
    let (status, _, _) = admin.post(model, &[("action", "untag"), ("tag", &tag)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(tags(&explored(&d, Some(&user), "team/coder:7b").await.unwrap()).is_empty());
    let (status, location, _) = admin.post(&format!("/admin/tags/{tag}/delete"), &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/tags?done=delete"));
    assert!(admin.get(&location).await.2.contains("No tags yet"));

    // Deleted, it leaves explore; restored, it is back.
    let (status, _, _) = admin.post(model, &[("action", "delete")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(explored(&d, Some(&user), "team/coder:7b").await, None);
    let (_, _, page) = admin.get("/admin/models").await;
    assert!(!page.contains("team/coder:7b"), "{page}");
    let (_, _, page) = admin.get("/admin/models?deleted=true").await;
    assert!(page.contains("team/coder:7b</a> <span class=\"muted\">(deleted)"), "{page}");
    let (status, _, _) = admin.post(model, &[("action", "restore")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(explored(&d, Some(&user), "team/coder:7b").await.is_some());

    // The audit page shows the catalog's changes, each linked to the model's page.
    eventually("the catalog's changes in the audit log", async || {
        admin.get("/admin/audit?target_type=model").await.2.contains("model.restore")
    })
    .await;
    let (_, _, page) = admin.get("/admin/audit?target_type=model").await;
    for action in ["model.create", "model.update", "model.delete", "model.restore"] {
        assert!(page.contains(&format!("<td>{action} <span")), "{action}: {page}");
    }
    assert!(page.contains("<a href=\"/admin/models/team/coder:7b\">team/coder:7b</a>"), "{page}");
}

/// The engines page lists the embedded engine and an outside Ollama server (a test double); a
/// pull from the node's page streams its progress to the page's script, or answers a plain form
/// when done; the audit page then shows what the admin did.
#[tokio::test]
async fn web_admin_engines_pull_with_progress_and_the_audit_shows_it() {
    let outside = FakeOllama::start("outside", &["alpha"]).await;
    let node = outside.url.strip_prefix("http://").unwrap().to_owned();
    let infra = TestInfra::new().await;
    let mut config = config_with_nodes(&infra, &[&outside]);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::in_process_with(infra, config, &ollamanet::app::Service::ALL).await;
    wait_for_nodes(&d, 2).await;
    let (mut admin, token) = admin_browser(&d, "root").await;

    let (status, _, page) = admin.get("/admin/engines").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("href=\"/admin/engines/local\"") && page.contains("tiny:latest"), "{page}");
    assert!(page.contains(&format!("href=\"/admin/engines/{node}\"")) && page.contains("alpha:latest"), "{page}");
    let (status, _, page) = admin.get("/admin/engines/local").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<td>tiny:latest</td>") && page.contains("in this process"), "{page}");
    assert!(page.contains("<script src=\"/static/admin.js\" defer></script>") && !page.contains("<script>"), "{page}");
    assert!(!page.contains(" onclick=") && !page.contains(" onsubmit="), "no inline handlers");

    // As the page's script asks: the progress as it comes.
    let pull = format!("/admin/engines/{node}/pull");
    let (status, _, events) = admin.post_accepting(&pull, &[("model", "delta")], "text/event-stream").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(events.contains("event: progress") && events.contains("\"completed\":50"), "{events}");
    assert!(events.trim_end().rsplit("\n\n").next().unwrap().starts_with("event: done"), "{events}");
    assert!(outside.has("delta"));

    // A plain form: the node's page once the pull is done, or with why it failed.
    let (status, location, page) = admin.post(&pull, &[("model", "epsilon")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert!(location.ends_with("?done=pull"), "{location}");
    assert!(outside.has("epsilon"));
    let (_, _, page) = admin.get(&location).await;
    assert!(page.contains("The model is pulled") && page.contains("<td>epsilon:latest</td>"), "{page}");
    let (status, _, page) = admin.post(&pull, &[("model", "missing-model:1b")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("file does not exist"), "{page}");
    let (status, _, page) = admin.post(&pull, &[("model", "../etc/passwd")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a bad name is refused before the node is asked: {page}");

    let (status, location, _) =
        admin.post(&format!("/admin/engines/{node}/delete"), &[("model", "delta:latest")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("?done=delete") && !outside.has("delta"), "{location}");

    let res = d.client.get(d.at("/static/admin.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    let script = res.text().await.unwrap();
    assert!(script.contains("textContent") && !script.contains("innerHTML"), "text only");

    // The audit page shows what was done, filtered.
    let (_, me) = d.call(Method::GET, "/api/auth/me", Some(&token), None).await;
    eventually("the pulls and the delete in the audit log", async || {
        let (_, page) = d.call(Method::GET, "/api/admin/audit?target_type=engine", Some(&token), None).await;
        page["items"].as_array().is_some_and(|i| i.len() >= 3)
    })
    .await;
    let (status, _, page) = admin.get("/admin/audit?target_type=engine").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("engine.pull") && page.contains("engine.delete_model"), "{page}");
    assert!(shows(&page, "\"delta\"") && shows(&page, "\"epsilon\""), "what was pulled: {page}");
    assert!(page.contains(&format!("href=\"/admin/users/{}\">root</a>", me["id"].as_str().unwrap())), "{page}");
    assert!(page.contains(&format!("<a href=\"/admin/engines/{node}\">{node}</a>")), "{page}");
    let (_, _, page) = admin.get("/admin/audit?action=engine.delete_model").await;
    assert!(!page.contains("engine.pull <"), "{page}");
    let (status, _, page) = admin.get("/admin/audit?actor_id=not-an-id").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("role=\"alert\""), "a filter the service cannot read says so: {page}");
    let (status, _, page) = admin.get("/admin/usage").await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

/// Roles from their page: created, listed with how many hold them, refused when they exist or
/// are protected or held, deleted when nobody holds them.
#[tokio::test]
async fn web_admin_creates_and_deletes_roles() {
    let d = Deployment::start(Mode::AllInOne).await;
    let (mut admin, _) = admin_browser(&d, "root").await;
    let (status, location, page) = admin.post("/admin/roles", &[("name", "Research")]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/roles?done=create"), "{page}");
    let (_, _, page) = admin.get("/admin/roles?done=create").await;
    assert!(shows(&page, "The role is created.") && page.contains("<td>Research</td>"), "{page}");
    let (status, _, page) = admin.post("/admin/roles", &[("name", "research")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a role of that name exists: {page}");
    for protected in ["Admin", "User"] {
        let (status, _, page) = admin.post(&format!("/admin/roles/{protected}/delete"), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{protected}: {page}");
    }
    let (status, location, page) = admin.post("/admin/roles/Research/delete", &[]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/roles?done=delete"), "{page}");
    let (_, _, page) = admin.get("/admin/roles").await;
    assert!(!page.contains("Research") && page.contains("<td>Admin</td>"), "{page}");
}
