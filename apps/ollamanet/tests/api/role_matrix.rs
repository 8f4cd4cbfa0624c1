//! Every route of the gateway's table that needs the Admin role, with every method it allows,
//! × {anonymous, user, admin}: 401, 403, and what an admin gets. The routes come from the table
//! itself: a route added to it without a case here fails the test.

use std::collections::BTreeSet;

use ollamanet_gateway::routes::RouteFile;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fake_ollama::{FakeOllama, platform_on};

/// One admin call: the table's path and method, the concrete path and body, and the status an
/// admin gets. In order: later cases use what earlier ones made, destructive ones come last.
struct Case {
    route: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    admin: StatusCode,
}

fn case(route: &'static str, method: Method, path: impl Into<String>, body: Option<Value>, admin: StatusCode) -> Case {
    Case { route, method, path: path.into(), body, admin }
}

/// The admin routes of the table, as `METHOD path`.
fn admin_routes() -> BTreeSet<String> {
    let table: RouteFile = toml::from_str(ollamanet_gateway::DEFAULT_ROUTES).unwrap();
    table
        .routes
        .iter()
        .filter(|r| r.roles.iter().any(|role| role == "Admin"))
        .flat_map(|r| r.methods.iter().map(move |m| format!("{m} {}", r.path)))
        .collect()
}

#[tokio::test]
async fn every_admin_route_refuses_anonymous_callers_and_users_and_serves_admins() {
    let node = FakeOllama::start("matrix", &["present"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;
    let victim = d.register("victim").await["user"]["id"].as_str().unwrap().to_owned();
    let (_, nodes) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let node_id =
        nodes["items"][0]["id"].as_str().or(nodes[0]["id"].as_str()).unwrap_or_else(|| panic!("{nodes}")).to_owned();
    let (_, tag) = d.call(Method::POST, "/api/admin/tags", Some(&admin), Some(json!({"name": "fixture"}))).await;
    let tag = tag["id"].as_str().unwrap().to_owned();

    use StatusCode as S;
    let u = |p: &str| format!("/api/admin/users/{victim}{p}");
    let e = |p: &str| format!("/api/admin/engines/{node_id}{p}");
    let t = |p: &str| format!("/api/admin/tags/{tag}{p}");
    let cases = vec![
        case("/api/admin/users", Method::GET, "/api/admin/users?q=vic", None, S::OK),
        case(
            "/api/admin/users",
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "made", "email": "made@example.com", "password": "correct horse battery staple"})),
            S::CREATED,
        ),
        case("/api/admin/users/{id}", Method::GET, u(""), None, S::OK),
        case("/api/admin/users/{id}", Method::PATCH, u(""), Some(json!({"username": "victim2"})), S::OK),
        case("/api/admin/users/{id}/lock", Method::POST, u("/lock"), Some(json!({"minutes": 5})), S::OK),
        case("/api/admin/users/{id}/unlock", Method::POST, u("/unlock"), None, S::OK),
        case("/api/admin/users/{id}/deactivate", Method::POST, u("/deactivate"), None, S::OK),
        case("/api/admin/users/{id}/activate", Method::POST, u("/activate"), None, S::OK),
        case("/api/admin/roles", Method::GET, "/api/admin/roles", None, S::OK),
        case("/api/admin/roles", Method::POST, "/api/admin/roles", Some(json!({"name": "Matrix"})), S::CREATED),
        case(
            "/api/admin/users/{id}/roles",
            Method::PUT,
            u("/roles"),
            Some(json!({"roles": ["User", "Matrix"]})),
            S::OK,
        ),
        case("/api/admin/users/{id}/password-reset", Method::POST, u("/password-reset"), None, S::ACCEPTED),
        case("/api/admin/engines", Method::GET, "/api/admin/engines", None, S::OK),
        case("/api/admin/engines/{node}", Method::GET, e(""), None, S::OK),
        case("/api/admin/engines/{node}/models", Method::GET, e("/models"), None, S::OK),
        case("/api/admin/engines/{node}/pull", Method::POST, e("/pull"), Some(json!({"model": "pulled"})), S::OK),
        case("/api/admin/engines/{node}/models", Method::DELETE, e("/models?model=pulled"), None, S::NO_CONTENT),
        case("/api/admin/models", Method::POST, "/api/admin/models", Some(json!({"name": "present"})), S::CREATED),
        case("/api/admin/models", Method::GET, "/api/admin/models", None, S::OK),
        case("/api/admin/models/{*name}", Method::GET, "/api/admin/models/present", None, S::OK),
        case(
            "/api/admin/models/{*name}",
            Method::PATCH,
            "/api/admin/models/present",
            Some(json!({"description": "d"})),
            S::OK,
        ),
        case(
            "/api/admin/models/enrich",
            Method::POST,
            "/api/admin/models/enrich",
            Some(json!({"name": "present"})),
            S::OK,
        ),
        case("/api/admin/tags", Method::GET, "/api/admin/tags", None, S::OK),
        case("/api/admin/tags", Method::POST, "/api/admin/tags", Some(json!({"name": "made"})), S::CREATED),
        case(
            "/api/admin/tags/{id}/models",
            Method::POST,
            t("/models"),
            Some(json!({"model": "present"})),
            S::NO_CONTENT,
        ),
        case("/api/admin/tags/{id}/models", Method::DELETE, t("/models?model=present"), None, S::NO_CONTENT),
        case("/api/admin/tags/{id}", Method::PATCH, t(""), Some(json!({"name": "renamed"})), S::OK),
        case("/api/admin/tags/{id}", Method::DELETE, t(""), None, S::NO_CONTENT),
        case("/api/admin/models/{*name}", Method::DELETE, "/api/admin/models/present", None, S::NO_CONTENT),
        case(
            "/api/admin/models/restore",
            Method::POST,
            "/api/admin/models/restore",
            Some(json!({"name": "present"})),
            S::OK,
        ),
        case("/api/admin/usage", Method::GET, "/api/admin/usage", None, S::OK),
        case("/api/admin/users/{id}", Method::DELETE, u(""), None, S::NO_CONTENT),
        case("/api/admin/users/{id}/purge", Method::POST, u("/purge"), None, S::NO_CONTENT),
        case("/api/admin/roles/{name}", Method::DELETE, "/api/admin/roles/Matrix", None, S::NO_CONTENT),
        case("/api/admin/audit", Method::GET, "/api/admin/audit?limit=100", None, S::OK),
    ];

    let covered: BTreeSet<String> = cases.iter().map(|c| format!("{} {}", c.method, c.route)).collect();
    let table = admin_routes();
    let missing: Vec<_> = table.difference(&covered).collect();
    assert!(missing.is_empty(), "admin routes without a case in the matrix: {missing:?}");
    let unknown: Vec<_> = covered.difference(&table).collect();
    assert!(unknown.is_empty(), "cases for routes the table does not have: {unknown:?}");

    for c in &cases {
        for (who, token, expected) in [("anonymous", None, S::UNAUTHORIZED), ("a user", Some(&user), S::FORBIDDEN)] {
            let (status, body) = d.call(c.method.clone(), &c.path, token.map(String::as_str), c.body.clone()).await;
            assert_eq!(status, expected, "{} {} as {who}: {body}", c.method, c.path);
        }
        let (status, body) = d.call(c.method.clone(), &c.path, Some(&admin), c.body.clone()).await;
        assert_eq!(status, c.admin, "{} {} as an admin: {body}", c.method, c.path);
    }

    // Every change the matrix made is in the audit log, attributed to the admin.
    let changes = [
        "user.create",
        "user.update",
        "user.lock",
        "user.unlock",
        "user.deactivate",
        "user.activate",
        "role.create",
        "user.set_roles",
        "user.password_reset",
        "engine.pull",
        "engine.delete_model",
        "model.create",
        "model.update",
        "tag.create",
        "tag.assign",
        "tag.unassign",
        "tag.rename",
        "tag.delete",
        "model.delete",
        "model.restore",
        "user.delete",
        "user.purge",
        "role.delete",
    ];
    let mut missing = Vec::new();
    for _ in 0..300 {
        let (_, page) = d.call(Method::GET, "/api/admin/audit?limit=100", Some(&admin), None).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let actions: BTreeSet<&str> =
            items.iter().filter(|e| e["actor"] == "root").filter_map(|e| e["action"].as_str()).collect();
        missing = changes.iter().filter(|a| !actions.contains(*a)).collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(missing.is_empty(), "no audit entry for {missing:?}");
}
