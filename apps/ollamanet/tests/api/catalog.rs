//! The model catalog: admins curate models and tags, explore shows them to everyone as their
//! roles allow (cached, and fresh on the next request after a change, in one process or
//! several), and every path to a model enforces its access rule.

use kit::testing::{Stack, TestInfra};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::engine::{engine_config, import_tiny};
use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, Mode, base_config, eventually};

async fn create_model(d: &Deployment, admin: &str, body: Value) -> Value {
    let (status, model) = d.call(Method::POST, "/api/admin/models", Some(admin), Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}: {model}");
    model
}

async fn create_tag(d: &Deployment, admin: &str, name: &str) -> String {
    let (status, tag) = d.call(Method::POST, "/api/admin/tags", Some(admin), Some(json!({"name": name}))).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    tag["id"].as_str().unwrap().to_owned()
}

/// The names of a page of models.
fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect()
}

async fn explore(d: &Deployment, token: Option<&str>, query: &str) -> Value {
    let (status, page) = d.call(Method::GET, &format!("/api/explore/models{query}"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

#[tokio::test]
async fn admins_curate_the_catalog_and_explore_shows_it() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;

    let code = create_tag(&d, &admin, "Code").await;
    let small = create_tag(&d, &admin, "Small").await;
    let (status, body) = d.call(Method::POST, "/api/admin/tags", Some(&admin), Some(json!({"name": "CODE"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("tag_exists")));
    let (status, _) = d.call(Method::POST, "/api/admin/tags", Some(&admin), Some(json!({"name": " "}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let smol = create_model(
        &d,
        &admin,
        json!({"name": "SmolLM2:135M", "description": "A small model", "family": "Llama", "parameter_count": 135_000_000,
               "capabilities": ["completion"], "languages": ["en"]}),
    )
    .await;
    assert_eq!((smol["name"].as_str(), smol["family"].as_str()), (Some("smollm2:135m"), Some("llama")));
    assert_eq!(smol["access"], json!({"public": true, "roles": []}));
    create_model(
        &d,
        &admin,
        json!({"name": "qwen2.5-coder:7b", "description": "Writes code", "family": "qwen2",
               "parameter_count": 7_600_000_000_i64, "capabilities": ["completion", "tools"]}),
    )
    .await;
    // For signed-in users only (every user holds the User role), and for a role nobody here has.
    create_model(&d, &admin, json!({"name": "members", "access": {"public": false, "roles": ["user"]}})).await;
    create_model(&d, &admin, json!({"name": "secret", "access": {"public": false, "roles": ["Research"]}})).await;
    let (status, body) =
        d.call(Method::POST, "/api/admin/models", Some(&admin), Some(json!({"name": "smollm2:135m"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("model_exists")));
    for bad in [
        json!({"name": "a b"}),
        json!({"name": "x", "image_url": "javascript:alert(1)"}),
        json!({"name": "x", "size": -1}),
    ] {
        let (status, body) = d.call(Method::POST, "/api/admin/models", Some(&admin), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (status, body) =
        d.call(Method::POST, "/api/admin/models", Some(&admin), Some(json!({"name": "x", "owner": "me"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields are refused: {body}");
    for (tag, model) in [(&code, "qwen2.5-coder:7b"), (&small, "smollm2:135m")] {
        let path = format!("/api/admin/tags/{tag}/models");
        let (status, body) = d.call(Method::POST, &path, Some(&admin), Some(json!({"model": model}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    // Anonymous callers see the public models; users also those for their roles; admins all.
    assert_eq!(names(&explore(&d, None, "").await), ["qwen2.5-coder:7b", "smollm2:135m"]);
    assert_eq!(names(&explore(&d, Some(&user), "").await), ["members:latest", "qwen2.5-coder:7b", "smollm2:135m"]);
    assert_eq!(names(&explore(&d, Some(&admin), "").await).len(), 4);
    assert_eq!(names(&explore(&d, Some("not-a-token"), "").await).len(), 2, "a bad credential is anonymous");

    // Search, filters and orders.
    for (query, expected) in [
        ("?q=code", vec!["qwen2.5-coder:7b"]),
        ("?q=SMOL", vec!["smollm2:135m"]),
        ("?q=writes%20co", vec!["qwen2.5-coder:7b"]),
        ("?q=small", vec!["smollm2:135m"]),
        ("?q=nothing", vec![]),
        ("?tags=small", vec!["smollm2:135m"]),
        ("?tags=small,code", vec![]),
        ("?capabilities=tools", vec!["qwen2.5-coder:7b"]),
        ("?capabilities=completion", vec!["qwen2.5-coder:7b", "smollm2:135m"]),
        ("?family=LLAMA", vec!["smollm2:135m"]),
        ("?min_parameters=1b", vec!["qwen2.5-coder:7b"]),
        ("?max_parameters=1b", vec!["smollm2:135m"]),
        ("?sort=newest", vec!["qwen2.5-coder:7b", "smollm2:135m"]),
    ] {
        assert_eq!(names(&explore(&d, None, query).await), expected, "{query}");
    }
    let (status, body) = d.call(Method::GET, "/api/explore/models?min_parameters=lots", None, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = d.call(Method::GET, "/api/explore/models?deleted=true", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
    let (status, body) = d.call(Method::GET, "/api/explore/models?cursor=forged", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_cursor")));

    // Keyset pages, in every order: every model once.
    for sort in ["name", "newest", "most_used"] {
        let mut seen = Vec::new();
        let mut query = format!("?sort={sort}&limit=1");
        loop {
            let page = explore(&d, Some(&user), &query).await;
            seen.extend(names(&page).iter().map(|n| n.to_string()));
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("?sort={sort}&limit=1&cursor={c}"),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["members:latest", "qwen2.5-coder:7b", "smollm2:135m"], "{sort}");
    }

    // Details, tags, models by tag; restricted models are not found by those they are not for.
    let (status, m) = d.call(Method::GET, "/api/explore/models/SmolLM2:135m", None, None).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!((m["description"].as_str(), m["tags"][0]["name"].as_str()), (Some("A small model"), Some("Small")));
    for (token, status) in
        [(None, StatusCode::NOT_FOUND), (Some(&user), StatusCode::NOT_FOUND), (Some(&admin), StatusCode::OK)]
    {
        let (got, _) = d.call(Method::GET, "/api/explore/models/secret", token.map(String::as_str), None).await;
        assert_eq!(got, status);
    }
    let (_, tags) = d.call(Method::GET, "/api/explore/tags", None, None).await;
    assert_eq!(tags, json!([{"id": code, "name": "Code", "models": 1}, {"id": small, "name": "Small", "models": 1}]));
    let (_, page) = d.call(Method::GET, &format!("/api/explore/tags/{code}/models"), None, None).await;
    assert_eq!(names(&page), ["qwen2.5-coder:7b"]);
    let (status, _) =
        d.call(Method::GET, &format!("/api/explore/tags/{}/models", uuid::Uuid::now_v7()), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // ETag: an unchanged answer is 304; after an admin edit, the next request has the change.
    let path = d.at("/api/explore/models/smollm2:135m");
    let first = d.client.get(&path).send().await.unwrap();
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    let again = d.client.get(&path).header(header::IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (status, body) = d
        .call(
            Method::PATCH,
            "/api/admin/models/smollm2:135m",
            Some(&admin),
            Some(json!({"description": "Tiny and quick"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = d.client.get(&path).header(header::IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(changed.json::<Value>().await.unwrap()["description"], "Tiny and quick");
    assert_eq!(names(&explore(&d, None, "?q=quick").await), ["smollm2:135m"]);

    // Access changes show at once too.
    let (status, _) = d
        .call(Method::PATCH, "/api/admin/models/secret", Some(&admin), Some(json!({"access": {"public": true}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&explore(&d, None, "").await).contains(&"secret:latest"));

    // Delete, restore, purge.
    let model = "/api/admin/models/smollm2:135m";
    assert_eq!(d.call(Method::DELETE, model, Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(d.call(Method::GET, "/api/explore/models/smollm2:135m", None, None).await.0, StatusCode::NOT_FOUND);
    assert!(!names(&explore(&d, None, "").await).contains(&"smollm2:135m"));
    let (_, listed) = d.call(Method::GET, "/api/admin/models?deleted=true", Some(&admin), None).await;
    assert!(names(&listed).contains(&"smollm2:135m"));
    let (status, body) = d.call(Method::DELETE, model, Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("model_deleted")));
    let (status, _) = d.call(Method::PATCH, model, Some(&admin), Some(json!({"description": "x"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) =
        d.call(Method::POST, "/api/admin/models/restore", Some(&admin), Some(json!({"name": "smollm2:135m"}))).await;
    assert_eq!((status, body["deleted_at"].is_null()), (StatusCode::OK, true), "{body}");
    assert_eq!(d.call(Method::GET, "/api/explore/models/smollm2:135m", None, None).await.0, StatusCode::OK);
    let (status, body) = d.call(Method::DELETE, &format!("{model}?purge=true"), Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("model_not_deleted")));
    assert_eq!(d.call(Method::DELETE, model, Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        d.call(Method::DELETE, &format!("{model}?purge=true"), Some(&admin), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(d.call(Method::GET, model, Some(&admin), None).await.0, StatusCode::NOT_FOUND);

    // Renaming a tag renames it in search; deleting it takes it off its models.
    let (status, _) =
        d.call(Method::PATCH, &format!("/api/admin/tags/{code}"), Some(&admin), Some(json!({"name": "Coding"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&explore(&d, None, "?tags=coding").await), ["qwen2.5-coder:7b"]);
    assert_eq!(
        d.call(Method::DELETE, &format!("/api/admin/tags/{code}"), Some(&admin), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(names(&explore(&d, None, "?tags=coding").await), Vec::<&str>::new());

    // Every change is in the audit log, with its actor.
    let expected = [
        "tag.create",
        "model.create",
        "tag.assign",
        "model.update",
        "model.delete",
        "model.restore",
        "model.purge",
        "tag.rename",
        "tag.delete",
    ];
    eventually("the catalog's audit records", async || {
        let (_, page) = d.call(Method::GET, "/api/admin/audit?limit=100", Some(&admin), None).await;
        let Some(items) = page["items"].as_array() else { return false };
        let actions: Vec<&str> =
            items.iter().filter(|e| e["actor"] == "root").filter_map(|e| e["action"].as_str()).collect();
        expected.iter().all(|a| actions.contains(a))
    })
    .await;
    let (_, page) =
        d.call(Method::GET, "/api/admin/audit?action=model.update&target_id=secret:latest", Some(&admin), None).await;
    let entry = &page["items"][0];
    assert_eq!((entry["source"].as_str(), entry["target_type"].as_str()), (Some("catalog"), Some("model")), "{page}");
    assert!(entry["after"].as_str().unwrap().contains("\"public\":true"), "{entry}");
}

#[tokio::test]
async fn enrichment_fills_a_model_from_what_the_engine_reports() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    import_tiny(infra.data_dir(), &config, "tiny", 1).await;
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let admin = d.admin_token("root").await;
    create_model(&d, &admin, json!({"name": "tiny", "description": "Kept as written", "license": "mine"})).await;
    let (status, m) =
        d.call(Method::POST, "/api/admin/models/enrich", Some(&admin), Some(json!({"name": "tiny"}))).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!((m["format"].as_str(), m["architecture"].as_str()), (Some("gguf"), Some("llama")), "{m}");
    assert!(m["context_length"].as_i64().is_some_and(|c| c > 0), "{m}");
    assert!(m["capabilities"].as_array().is_some_and(|c| !c.is_empty()), "{m}");
    assert_eq!(m["description"], "Kept as written", "what the engine does not know is left alone");
    let (status, body) = d.call(Method::POST, "/api/admin/models", Some(&admin), Some(json!({"name": "absent"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        d.call(Method::POST, "/api/admin/models/enrich", Some(&admin), Some(json!({"name": "absent"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("model_not_found")), "{body}");
    let (status, _) =
        d.call(Method::POST, "/api/admin/models/enrich", Some(&admin), Some(json!({"name": "uncatalogued"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restricted_model_is_refused_on_every_path_to_users_without_its_role() {
    let node = FakeOllama::start("guarded", &["locked", "open"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;
    create_model(&d, &admin, json!({"name": "locked", "access": {"public": false, "roles": ["Research"]}})).await;

    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": false});
    let v1 = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    for (token, expected) in [(&user, StatusCode::NOT_FOUND), (&admin, StatusCode::OK)] {
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(token), Some(chat("locked"))).await;
        assert_eq!(status, expected, "ollama face: {body}");
        let (status, body) = d.call(Method::POST, "/v1/chat/completions", Some(token), Some(v1("locked"))).await;
        assert_eq!(status, expected, "openai face: {body}");
    }
    // Listings leave it out for them too.
    for (token, expected) in [(&user, vec!["open:latest"]), (&admin, vec!["locked:latest", "open:latest"])] {
        let (_, tags) = d.call(Method::GET, "/ollama/api/tags", Some(token), None).await;
        let mut listed: Vec<&str> =
            tags["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        listed.sort();
        assert_eq!(listed, expected, "/ollama/api/tags");
        let (_, models) = d.call(Method::GET, "/v1/models", Some(token), None).await;
        let mut listed: Vec<&str> =
            models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        listed.sort();
        assert_eq!(listed, expected, "/v1/models");
    }
    // A model the catalog does not describe stays open to signed-in users.
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat("open"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // In a conversation the reply fails as "not found", and nothing reaches the engine.
    let chats = node.chats().len();
    let (status, c) = d.call(Method::POST, "/api/conversations", Some(&user), Some(json!({"model": "locked"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let path = format!("/api/conversations/{}/messages", c["id"].as_str().unwrap());
    let (status, body) =
        d.call(Method::POST, &path, Some(&user), Some(json!({"content": "hi", "stream": false}))).await;
    assert_eq!((status, body["reply"]["status"].as_str()), (StatusCode::OK, Some("failed")), "{body}");
    assert!(body["reply"]["error"].as_str().unwrap().contains("not found"), "{body}");
    assert_eq!(node.chats().len(), chats, "the refused chat did not reach the engine");

    // Opening the model to everyone applies on the next request.
    let (status, _) = d
        .call(Method::PATCH, "/api/admin/models/locked", Some(&admin), Some(json!({"access": {"public": true}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat("locked"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Deleting it from the catalog keeps it for admins only.
    assert_eq!(d.call(Method::DELETE, "/api/admin/models/locked", Some(&admin), None).await.0, StatusCode::NO_CONTENT);
    let (status, _) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat("locked"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Explore in a process of its own, with a private in-memory cache: only the bus tells it of
/// an admin's change, and the change shows on the next request.
#[tokio::test]
async fn an_admin_edit_reaches_explore_in_another_process_on_the_next_request() {
    let infra = TestInfra::with_stack(Stack::Full).await;
    let mut config = base_config(&infra);
    config.infra.redis_url = None;
    let d = Deployment::apart(infra, config, &["auth", "inference", "admin", "explore"]).await;
    let admin = d.admin_token("root").await;
    create_model(&d, &admin, json!({"name": "far", "description": "before"})).await;
    for round in 0..5 {
        // Read twice: the second answer comes from explore's cache.
        for _ in 0..2 {
            let (status, m) = d.call(Method::GET, "/api/explore/models/far", None, None).await;
            assert_eq!(status, StatusCode::OK, "{m}");
            let expected = if round == 0 { "before".to_owned() } else { format!("round {}", round - 1) };
            assert_eq!(m["description"], expected.as_str());
        }
        let (status, body) = d
            .call(
                Method::PATCH,
                "/api/admin/models/far",
                Some(&admin),
                Some(json!({"description": format!("round {round}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Usage records become statistics per day, user and model, and the catalog's "most used" order.
#[tokio::test]
async fn usage_is_summed_per_day_user_and_model_and_orders_the_catalog() {
    let node = FakeOllama::start("usage", &["counted", "other"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let admin = d.admin_token("root").await;
    let user = d.register("ulla").await;
    let (token, user_id) = (user["access_token"].as_str().unwrap(), user["user"]["id"].as_str().unwrap());
    for name in ["counted", "other"] {
        create_model(&d, &admin, json!({"name": name})).await;
    }
    for model in ["other", "counted", "other"] {
        let chat = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": false});
        let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(token), Some(chat)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let path = format!("/api/admin/usage?user_id={user_id}&from={today}&to={today}");
    eventually("the usage rows", async || {
        let (_, page) = d.call(Method::GET, &path, Some(&admin), None).await;
        page["items"]
            .as_array()
            .is_some_and(|rows| rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum::<i64>() == 3)
    })
    .await;
    let (_, page) = d.call(Method::GET, &path, Some(&admin), None).await;
    let other = page["items"].as_array().unwrap().iter().find(|r| r["model"] == "other:latest").unwrap().clone();
    assert_eq!(other["requests"], 2, "{page}");
    // The fake engine reports 7 prompt and 3 generated tokens per chat.
    assert_eq!((other["prompt_tokens"].as_i64(), other["eval_tokens"].as_i64()), (Some(14), Some(6)), "{page}");
    let (status, body) = d.call(Method::GET, "/api/admin/usage?from=yesterday", Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));

    eventually("the catalog's use counts", async || {
        let (_, page) = d.call(Method::GET, "/api/admin/models?sort=most_used", Some(&admin), None).await;
        // By name "counted" would come first.
        names(&page) == ["other:latest", "counted:latest"] && page["items"][0]["requests"] == 2
    })
    .await;
}

/// Explore knows which catalog models some engine has, from the inference service's reports.
#[tokio::test]
async fn explore_tells_which_models_an_engine_has() {
    let node = FakeOllama::start("stock", &["present"]).await;
    let d = platform_on(&[&node], |_| {}).await;
    let admin = d.admin_token("root").await;
    for name in ["present", "absent"] {
        create_model(&d, &admin, json!({"name": name})).await;
    }
    eventually("explore's installed filter", async || {
        names(&explore(&d, None, "?installed=true").await) == ["present:latest"]
    })
    .await;
    let all = explore(&d, None, "").await;
    let flags: Vec<(&str, bool)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["installed"] == true))
        .collect();
    assert_eq!(flags, [("absent:latest", false), ("present:latest", true)]);
    let (_, present) = d.call(Method::GET, "/api/explore/models/present", None, None).await;
    assert_eq!(present["installed"], true);

    // A model pulled onto the engine shows as installed without any catalog change.
    let (_, nodes) = d.call(Method::GET, "/api/admin/engines", Some(&admin), None).await;
    let pull = format!("/api/admin/engines/{}/pull", nodes["items"][0]["id"].as_str().unwrap());
    let (status, body) = d.call(Method::POST, &pull, Some(&admin), Some(json!({"model": "absent"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("the pulled model shown as installed", async || {
        names(&explore(&d, None, "?installed=true").await) == ["absent:latest", "present:latest"]
    })
    .await;
    let (status, body) = d.call(Method::GET, "/api/admin/models?installed=true", Some(&admin), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
}

/// A model named with its namespace (`hf.co/org/model:tag`) spans several path segments: every
/// route that names a model takes it whole, through the gateway.
#[tokio::test]
async fn a_model_named_with_a_namespace_is_reached_on_every_route() {
    let d = Deployment::start(Mode::AllInOne).await;
    let admin = d.admin_token("root").await;
    let name = "hf.co/acme/tiny-model:q4";
    create_model(&d, &admin, json!({"name": name, "description": "before"})).await;
    let one = format!("/api/admin/models/{name}");
    let (status, body) = d.call(Method::GET, &one, Some(&admin), None).await;
    assert_eq!((status, body["name"].as_str()), (StatusCode::OK, Some(name)), "{body}");
    let (status, body) = d.call(Method::PATCH, &one, Some(&admin), Some(json!({"description": "after"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = d.call(Method::GET, &format!("/api/explore/models/{name}"), None, None).await;
    assert_eq!((status, body["description"].as_str()), (StatusCode::OK, Some("after")), "{body}");
    let (status, _) = d.call(Method::DELETE, &one, Some(&admin), None).await;
    assert!(status.is_success(), "{status}");
    let (status, _) = d.call(Method::GET, &format!("/api/explore/models/{name}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The models `token` may use, as `/ollama/api/tags` and `/v1/models` list them (the two must
/// agree).
async fn usable(d: &Deployment, token: &str) -> Vec<String> {
    let (_, tags) = d.call(Method::GET, "/ollama/api/tags", Some(token), None).await;
    let mut listed: Vec<String> =
        tags["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect();
    let (_, models) = d.call(Method::GET, "/v1/models", Some(token), None).await;
    let mut openai: Vec<String> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    listed.sort();
    openai.sort();
    assert_eq!(listed, openai, "/ollama/api/tags and /v1/models");
    listed
}

/// Pulls `model` onto the only node and waits for the pull to finish.
async fn pull_onto_the_node(d: &Deployment, admin: &str, model: &str) {
    let (_, nodes) = d.call(Method::GET, "/api/admin/engines", Some(admin), None).await;
    let pull = format!("/api/admin/engines/{}/pull", nodes["items"][0]["id"].as_str().unwrap());
    let res = d.client.post(d.at(&pull)).bearer_auth(admin).json(&json!({"model": model})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let events = crate::helpers::SseReader::new(res).rest().await;
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("done"), "{events:?}");
}

/// On a listener other machines can reach, the default keeps a model an admin pulls for admins
/// until it is catalogued: users neither see it nor reach it on any path.
#[tokio::test]
async fn a_pulled_uncatalogued_model_is_for_admins_by_default_on_a_reachable_listener() {
    let node = FakeOllama::start("fresh", &["known"]).await;
    let d = platform_on(&[&node], |c| c.listen = "0.0.0.0:8080".into()).await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;
    create_model(&d, &admin, json!({"name": "known"})).await;
    pull_onto_the_node(&d, &admin, "newcomer").await;

    assert_eq!(usable(&d, &user).await, ["known:latest"]);
    assert_eq!(usable(&d, &admin).await, ["known:latest", "newcomer:latest"]);
    let chat = json!({"model": "newcomer", "stream": false, "messages": [{"role": "user", "content": "hi"}]});
    for (path, body) in [
        ("/ollama/api/chat", chat.clone()),
        ("/ollama/api/generate", json!({"model": "newcomer", "stream": false, "prompt": "hi"})),
        ("/ollama/api/embed", json!({"model": "newcomer", "input": "hi"})),
        ("/ollama/api/show", json!({"model": "newcomer"})),
        ("/v1/chat/completions", json!({"model": "newcomer", "messages": [{"role": "user", "content": "hi"}]})),
        ("/v1/embeddings", json!({"model": "newcomer", "input": "hi"})),
    ] {
        let (status, answer) = d.call(Method::POST, path, Some(&user), Some(body.clone())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        let (status, answer) = d.call(Method::POST, path, Some(&admin), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    let (status, _) = d.call(Method::GET, "/v1/models/newcomer", Some(&user), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ran_for_admin = node.models_asked().len();

    // In a conversation the reply fails as "not found", and nothing reaches the engine.
    let (status, c) = d.call(Method::POST, "/api/conversations", Some(&user), Some(json!({"model": "newcomer"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    let path = format!("/api/conversations/{}/messages", c["id"].as_str().unwrap());
    let (status, body) =
        d.call(Method::POST, &path, Some(&user), Some(json!({"content": "hi", "stream": false}))).await;
    assert_eq!((status, body["reply"]["status"].as_str()), (StatusCode::OK, Some("failed")), "{body}");
    assert!(body["reply"]["error"].as_str().unwrap().contains("not found"), "{body}");
    assert_eq!(node.models_asked().len(), ran_for_admin, "no request of the user's reached the node");

    // Catalogued, it is what its rule says.
    create_model(&d, &admin, json!({"name": "newcomer"})).await;
    assert_eq!(usable(&d, &user).await, ["known:latest", "newcomer:latest"]);
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `inference.uncatalogued = "users"` opens uncatalogued models to every account, whatever the
/// listener.
#[tokio::test]
async fn with_uncatalogued_users_a_pulled_model_is_open_to_every_account() {
    let node = FakeOllama::start("fresh", &["known"]).await;
    let d = platform_on(&[&node], |c| {
        c.listen = "0.0.0.0:8080".into();
        c.inference.uncatalogued = Some(ollamanet_inference::Uncatalogued::Users);
    })
    .await;
    let admin = d.admin_token("root").await;
    let user = d.user_token("ulla").await;
    pull_onto_the_node(&d, &admin, "newcomer").await;
    assert_eq!(usable(&d, &user).await, ["known:latest", "newcomer:latest"]);
    let chat = json!({"model": "newcomer", "stream": false, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = d.call(Method::POST, "/ollama/api/chat", Some(&user), Some(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `ollamanet models demo` catalogues the demo models for every account, so that they work out
/// of the box on a listener where uncatalogued models are for admins.
#[tokio::test]
async fn the_demo_models_are_catalogued_for_every_account() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    engine_config(&mut config);
    let file = infra.data_dir().join("demo.toml");
    std::fs::create_dir_all(infra.data_dir()).unwrap();
    std::fs::write(&file, ollamanet::config::to_toml(&config, false)).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ollamanet"))
        .args(["--config", file.to_str().unwrap(), "models", "demo"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("AMQP_URL")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    config.listen = "0.0.0.0:8080".into();
    let d = Deployment::start_with(Mode::AllInOne, infra, config).await;
    let user = d.user_token("ulla").await;
    assert_eq!(usable(&d, &user).await, ["all-minilm:latest", "smollm2:135m"]);
    let (status, body) = d
        .call(Method::POST, "/ollama/api/embed", Some(&user), Some(json!({"model": "all-minilm", "input": "hi"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, page) = d.call(Method::GET, "/api/explore/models", None, None).await;
    assert_eq!(names(&page), ["all-minilm:latest", "smollm2:135m"], "public in the catalog");
}
