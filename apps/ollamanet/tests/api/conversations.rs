//! The conversation service through the gateway: replies as events, branches, stop, resume after
//! a disconnect, folders, search, notes, feedback, export and import. The engine is a fake Ollama
//! node (a test double for the engines outside the platform), so that a test can hold a reply
//! mid-stream and see exactly what the model was sent; `slow_` tests use the real SmolLM2.

use std::time::Duration;

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::fake_ollama::{FakeOllama, config_with_nodes, platform_on};
use crate::helpers::{Deployment, SseReader, base_config, deltas, spawn_process, wait_for_nodes};

async fn deployment(node: &FakeOllama) -> Deployment {
    platform_on(&[node], |_| {}).await
}

async fn create(d: &Deployment, token: &str, body: Value) -> Value {
    let (status, c) = d.call(Method::POST, "/api/conversations", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Sends a message and reads the reply's events as they come.
async fn send(d: &Deployment, token: &str, conversation: &str, body: Value) -> SseReader {
    let res = d
        .client
        .post(d.at(&format!("/api/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    SseReader::new(res)
}

/// Sends a message without streaming; the exchange.
async fn exchange(d: &Deployment, token: &str, conversation: &str, mut body: Value) -> Value {
    body["stream"] = json!(false);
    let (status, ex) =
        d.call(Method::POST, &format!("/api/conversations/{conversation}/messages"), Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{ex}");
    ex
}

async fn messages(d: &Deployment, token: &str, conversation: &str, view: &str) -> Vec<Value> {
    let path = format!("/api/conversations/{conversation}/messages?view={view}");
    let (status, list) = d.call(Method::GET, &path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

fn contents(list: &[Value]) -> Vec<String> {
    list.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

/// The roles and contents of the messages of the last chat the node received.
fn last_sent(node: &FakeOllama) -> Vec<(String, String)> {
    let chats = node.chats();
    let last = chats.iter().rev().find(|c| c["stream"] != false).expect("a streamed chat");
    last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(r, c)| ((*r).to_owned(), (*c).to_owned())).collect()
}

#[tokio::test]
async fn a_reply_streams_as_events_and_is_saved_with_its_usage_and_a_title() {
    let node = FakeOllama::start("n1", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("ada").await;
    let c = create(&d, &token, json!({"model": "alpha"})).await;
    assert_eq!(c["title"], "New conversation");

    let events = send(&d, &token, &id(&c), json!({"content": "hi"})).await.rest().await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(&kinds[kinds.len() - 2..], ["done", "title"], "{events:?}");
    let start = &events[0].data;
    let reply_id = start["message_id"].as_str().unwrap().to_owned();
    assert_eq!(start["model"], "alpha");
    assert_eq!(deltas(&events), "Hello from n1");
    let done = &events[events.len() - 2];
    assert_eq!(done.data["status"], "complete");
    assert_eq!(done.data["usage"]["prompt_tokens"], 7);
    assert_eq!(done.data["usage"]["completion_tokens"], 3);
    assert_eq!(done.data["usage"]["total_duration_ns"], 5_000_000);
    assert!(done.data["usage"]["time_to_first_token_ns"].as_i64().unwrap() > 0);
    assert_eq!(done.id, format!("{reply_id}:{}", "Hello from n1".len()));
    assert_eq!(events.last().unwrap().data["title"], "Hello from n1");
    assert_eq!(last_sent(&node), pairs(&[("user", "hi")]), "no system prompt was set");

    let list = messages(&d, &token, &id(&c), "path").await;
    assert_eq!(contents(&list), ["hi", "Hello from n1"]);
    assert_eq!(list[0]["role"], "user");
    assert_eq!(list[1]["role"], "assistant");
    assert_eq!(list[1]["id"], reply_id.as_str());
    assert_eq!(list[1]["status"], "complete");
    assert_eq!(list[1]["usage"]["eval_duration_ns"], 2_000_000);
    let (_, c) = d.call(Method::GET, &format!("/api/conversations/{}", id(&c)), Some(&token), None).await;
    assert_eq!(c["title"], "Hello from n1");
    assert_eq!(c["active_message_id"], reply_id.as_str());

    let metrics = d.metrics().await;
    assert!(metrics.contains("conversation_replies_total{status=\"complete\"} 1"), "{metrics}");
    assert!(metrics.contains("conversation_time_to_first_token_seconds"), "{metrics}");
    assert!(metrics.contains("conversation_replies_generating 0"), "{metrics}");
}

#[tokio::test]
async fn edits_and_regenerations_branch_and_the_model_sees_the_branch_with_exact_roles() {
    let node = FakeOllama::start("n2", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("bob").await;
    let c = create(&d, &token, json!({"model": "alpha", "title": "Fixed", "system_prompt": "be brief"})).await;
    let cid = id(&c);

    let one = exchange(&d, &token, &cid, json!({"content": "one"})).await;
    assert_eq!(one["message"]["content"], "one");
    assert_eq!(one["reply"]["content"], "Hello from n2");
    assert_eq!(one["reply"]["status"], "complete");
    let two = exchange(&d, &token, &cid, json!({"content": "two"})).await;
    let history = [("system", "be brief"), ("user", "one"), ("assistant", "Hello from n2")];
    assert_eq!(last_sent(&node), pairs(&[history.as_slice(), &[("user", "two")]].concat()));

    // Editing "two" makes a sibling branch; the model sees the edited branch only.
    let two_id = two["message"]["id"].as_str().unwrap();
    let deux = exchange(&d, &token, &cid, json!({"content": "deux", "edit_of": two_id})).await;
    assert_eq!(last_sent(&node), pairs(&[history.as_slice(), &[("user", "deux")]].concat()));
    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!(contents(&path), ["one", "Hello from n2", "deux", "Hello from n2"]);
    assert_eq!(path[2]["sibling_ids"], json!([two_id, deux["message"]["id"]]));

    // Regenerating the last reply: another sibling, the same history.
    let reply3 = deux["reply"]["id"].as_str().unwrap();
    let res = d
        .client
        .post(d.at(&format!("/api/conversations/{cid}/messages/{reply3}/regenerate")))
        .bearer_auth(&token)
        .json(&json!({"stream": false}))
        .send()
        .await
        .unwrap();
    let regenerated: Value = res.json().await.unwrap();
    assert!(regenerated["message"].is_null());
    let reply4 = regenerated["reply"]["id"].as_str().unwrap();
    assert_eq!(last_sent(&node), pairs(&[history.as_slice(), &[("user", "deux")]].concat()));
    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!(path[3]["id"], reply4);
    assert_eq!(path[3]["sibling_ids"], json!([reply3, reply4]));

    // Back to the first branch: the newest message under "two" becomes the active one.
    let (status, c) = d
        .call(
            Method::PATCH,
            &format!("/api/conversations/{cid}"),
            Some(&token),
            Some(json!({"active_message_id": two_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["active_message_id"], two["reply"]["id"]);
    assert_eq!(contents(&messages(&d, &token, &cid, "path").await), ["one", "Hello from n2", "two", "Hello from n2"]);
    // And the next message continues that branch.
    exchange(&d, &token, &cid, json!({"content": "three"})).await;
    let sent = last_sent(&node);
    assert_eq!(sent[sent.len() - 3..], pairs(&[("user", "two"), ("assistant", "Hello from n2"), ("user", "three")]));
    assert_eq!(messages(&d, &token, &cid, "tree").await.len(), 9);
}

#[tokio::test]
async fn a_dropped_client_loses_nothing_and_resumes_where_it_left_off() {
    let node = FakeOllama::start_with("held", &["alpha"], true).await;
    let d = deployment(&node).await;
    let token = d.user_token("cyd").await;
    let cid = id(&create(&d, &token, json!({"model": "alpha", "title": "t"})).await);

    let mut reader = send(&d, &token, &cid, json!({"content": "hi"})).await;
    assert_eq!(reader.next().await.unwrap().event, "start");
    let first = reader.next().await.unwrap();
    assert_eq!((first.event.as_str(), first.data["content"].as_str()), ("delta", Some("Hello")));
    drop(reader);

    // The reply keeps going without its client, and is saved as it grows.
    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!(path[1]["status"], "streaming");
    // Another message meanwhile is refused: one reply at a time.
    let (status, body) = d
        .call(Method::POST, &format!("/api/conversations/{cid}/messages"), Some(&token), Some(json!({"content": "x"})))
        .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("generation_in_progress")));

    let res = d
        .client
        .get(d.at(&format!("/api/conversations/{cid}/stream")))
        .bearer_auth(&token)
        .header("Last-Event-ID", &first.id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut resumed = SseReader::new(res);
    assert_eq!(resumed.next().await.unwrap().event, "start");
    node.release();
    let rest = resumed.rest().await;
    assert_eq!(deltas(&rest), " from held");
    assert_eq!(rest.last().unwrap().event, "done");

    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!((path[1]["content"].as_str(), path[1]["status"].as_str()), (Some("Hello from held"), Some("complete")));

    // After the end, resuming replays from the database.
    let res = d
        .client
        .get(d.at(&format!("/api/conversations/{cid}/stream?last_event_id={}", first.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let replay = SseReader::new(res).rest().await;
    assert_eq!(deltas(&replay), " from held");
    assert_eq!(replay.last().unwrap().data["status"], "complete");
    let (status, body) = d
        .call(Method::GET, &format!("/api/conversations/{cid}/stream?last_event_id=nonsense"), Some(&token), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_event_id")));
}

#[tokio::test]
async fn stop_ends_a_reply_and_keeps_what_it_said() {
    let node = FakeOllama::start_with("slow", &["alpha"], true).await;
    let d = deployment(&node).await;
    let token = d.user_token("dee").await;
    let cid = id(&create(&d, &token, json!({"model": "alpha", "title": "t"})).await);

    let mut reader = send(&d, &token, &cid, json!({"content": "hi"})).await;
    reader.next().await.unwrap();
    assert_eq!(reader.next().await.unwrap().data["content"], "Hello");
    let (status, stopped) = d.call(Method::POST, &format!("/api/conversations/{cid}/stop"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stopped["stopping"], true);
    let rest = reader.rest().await;
    let done = rest.last().unwrap();
    assert_eq!((done.event.as_str(), done.data["status"].as_str()), ("done", Some("stopped")));
    node.release();

    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!((path[1]["content"].as_str(), path[1]["status"].as_str()), (Some("Hello"), Some("stopped")));
    let (_, again) = d.call(Method::POST, &format!("/api/conversations/{cid}/stop"), Some(&token), None).await;
    assert_eq!(again["stopping"], false);
    // The conversation takes messages again.
    let mut again = send(&d, &token, &cid, json!({"content": "again"})).await;
    again.next().await.unwrap();
    again.next().await.unwrap();
    node.release();
    assert_eq!(again.rest().await.last().unwrap().data["status"], "complete");
}

#[tokio::test]
async fn a_waiting_reply_reports_its_place_in_the_queue() {
    let node = FakeOllama::start_with("busy", &["alpha"], true).await;
    let d = platform_on(&[&node], |c| {
        c.inference.node_capacity = 1;
        c.inference.queue = 4;
    })
    .await;
    let ada = d.user_token("ada").await;
    let bob = d.user_token("bob").await;
    let first = id(&create(&d, &ada, json!({"model": "alpha", "title": "first"})).await);
    let second = id(&create(&d, &bob, json!({"model": "alpha", "title": "second"})).await);

    // The node's one slot is taken by a reply held mid-stream.
    let mut running = send(&d, &ada, &first, json!({"content": "one"})).await;
    assert_eq!(running.next().await.unwrap().event, "start");
    assert_eq!(running.next().await.unwrap().event, "delta");

    let mut waiting = send(&d, &bob, &second, json!({"content": "two"})).await;
    assert_eq!(waiting.next().await.unwrap().event, "start");
    let queued = waiting.next().await.unwrap();
    assert_eq!((queued.event.as_str(), &queued.data), ("queued", &json!({"position": 1})));
    let path = messages(&d, &bob, &second, "path").await;
    assert_eq!(path[1]["status"], "streaming", "the waiting reply is recorded already");

    // The slot frees up: the waiting reply is generated, and told so by its text arriving.
    node.release();
    assert_eq!(running.rest().await.last().unwrap().event, "done");
    let delta = waiting.next().await.unwrap();
    assert_eq!((delta.event.as_str(), delta.data["content"].as_str()), ("delta", Some("Hello")));
    node.release();
    let rest = waiting.rest().await;
    assert_eq!(rest.last().unwrap().event, "done", "{rest:?}");
    assert!(rest.iter().all(|e| e.event != "queued"), "no place in the queue after it ran: {rest:?}");
    let path = messages(&d, &bob, &second, "path").await;
    assert_eq!((path[1]["content"].as_str(), path[1]["status"].as_str()), (Some("Hello from busy"), Some("complete")));
}

#[tokio::test]
async fn a_conversation_works_with_every_service_in_its_own_process() {
    let node = FakeOllama::start("apart", &["alpha"]).await;
    let infra = TestInfra::new().await;
    let config = config_with_nodes(&infra, &[&node]);
    let d = Deployment::apart(infra, config, &["auth", "inference", "conversation"]).await;
    wait_for_nodes(&d, 1).await;
    let token = d.user_token("ola").await;
    let (status, root) = d.call(Method::GET, "/api/folders", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    let c = id(&create(&d, &token, json!({"model": "alpha"})).await);

    // Over the network the conversation service calls the inference service as the user.
    let events = send(&d, &token, &c, json!({"content": "hi"})).await.rest().await;
    assert_eq!(deltas(&events), "Hello from apart");
    assert_eq!(events.iter().rev().nth(1).unwrap().event, "done", "{events:?}");
    let path = messages(&d, &token, &c, "path").await;
    assert_eq!((path[1]["content"].as_str(), path[1]["status"].as_str()), (Some("Hello from apart"), Some("complete")));
    let (_, conversation) = d.call(Method::GET, &format!("/api/conversations/{c}"), Some(&token), None).await;
    assert_eq!(conversation["title"], "Hello from apart");

    // Ownership holds across processes too.
    let other = d.user_token("pat").await;
    let (status, body) = d.call(Method::GET, &format!("/api/conversations/{c}"), Some(&other), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _) = d.call(Method::GET, &format!("/api/conversations/{c}"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A client of another instance than the one generating a reply follows it through the
/// database, and gets all of it.
#[tokio::test]
async fn a_reply_is_followed_from_another_instance() {
    let node = FakeOllama::start_with("held", &["alpha"], true).await;
    let infra = TestInfra::new().await;
    let config = config_with_nodes(&infra, &[&node]);
    let d = Deployment::apart(infra, config, &["auth", "inference", "conversation"]).await;
    let (_other, other_url) = spawn_process(d.infra(), &d.config, "conversation").await;
    wait_for_nodes(&d, 1).await;
    let token = d.user_token("uma").await;
    let c = id(&create(&d, &token, json!({"model": "alpha", "title": "t"})).await);

    let mut generating = send(&d, &token, &c, json!({"content": "hi"})).await;
    let start = generating.next().await.unwrap();
    assert_eq!(generating.next().await.unwrap().data["content"], "Hello");
    let follow = async || {
        let res =
            d.client.get(format!("{other_url}/api/conversations/{c}/stream")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut events = SseReader::new(res);
        assert_eq!(events.next().await.unwrap().data, start.data, "the same start, wherever it is read");
        events
    };
    let followers = [follow().await, follow().await, follow().await];
    node.release();
    assert_eq!(deltas(&generating.rest().await), " from held");
    for events in followers {
        let rest = events.rest().await;
        assert_eq!(deltas(&rest), "Hello from held", "{rest:?}");
        assert_eq!(rest.last().unwrap().data["status"], "complete", "{rest:?}");
    }
}

#[tokio::test]
async fn folders_nest_with_unique_names_and_refuse_cycles_and_silent_deletes() {
    let node = FakeOllama::start("n3", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("eve").await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let (d, token) = (&d, &token);
        async move { d.call(method, &path, Some(token), body).await }
    };

    let (status, list) = call(Method::GET, "/api/folders".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    let root = list["items"][0].clone();
    assert_eq!((root["name"].as_str(), root["parent_id"].is_null()), (Some("Root"), true));

    let (status, work) = call(Method::POST, "/api/folders".into(), Some(json!({"name": "Work"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(work["parent_id"], root["id"]);
    let (status, body) = call(Method::POST, "/api/folders".into(), Some(json!({"name": "work"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("folder_name_taken")));
    let (status, inner) =
        call(Method::POST, "/api/folders".into(), Some(json!({"name": "Work", "parent_id": work["id"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "the same name under another parent is fine");

    // No folder goes under itself or its descendants; the root stays where it is.
    let (status, body) =
        call(Method::PATCH, format!("/api/folders/{}", id(&work)), Some(json!({"parent_id": inner["id"]}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("folder_cycle")));
    let (status, body) = call(Method::PATCH, format!("/api/folders/{}", id(&root)), Some(json!({"name": "x"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("root_folder")));
    let (status, moved) = call(
        Method::PATCH,
        format!("/api/folders/{}", id(&inner)),
        Some(json!({"parent_id": root["id"], "name": "Inner"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((moved["parent_id"].clone(), moved["name"].as_str()), (root["id"].clone(), Some("Inner")));

    // A folder with something in it is deleted only when asked to take its contents along.
    let c = create(&d, &token, json!({"model": "alpha", "title": "filed", "folder_id": work["id"]})).await;
    let (status, body) = call(Method::DELETE, format!("/api/folders/{}", id(&work)), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("folder_not_empty")));
    let (status, _) = call(Method::DELETE, format!("/api/folders/{}?recursive=true", id(&work)), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(call(Method::GET, format!("/api/conversations/{}", id(&c)), None).await.0, StatusCode::NOT_FOUND);
    let (status, body) = call(Method::DELETE, format!("/api/folders/{}", id(&root)), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("root_folder")));
    let (_, list) = call(Method::GET, "/api/folders".into(), None).await;
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Root", "Inner"]);
}

#[tokio::test]
async fn conversations_are_listed_newest_first_filtered_paged_and_searched_in_titles_and_messages() {
    let node = FakeOllama::start("n4", &["alpha", "beta"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("fay").await;
    let (_, folder) = d.call(Method::POST, "/api/folders", Some(&token), Some(json!({"name": "Trips"}))).await;
    let paris = create(&d, &token, json!({"model": "alpha", "title": "Paris trip", "folder_id": folder["id"]})).await;
    let rust = create(&d, &token, json!({"model": "beta", "title": "Rust lifetimes"})).await;
    let misc = create(&d, &token, json!({"model": "alpha", "title": "Misc"})).await;
    exchange(&d, &token, &id(&misc), json!({"content": "What about the Louvre opening hours?"})).await;
    let list = |query: &'static str| {
        let (d, token) = (&d, &token);
        async move {
            let (status, page) = d.call(Method::GET, &format!("/api/conversations{query}"), Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    let titles = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap().to_owned()).collect()
    };

    // Most recently active first: the one with a message leads.
    assert_eq!(titles(&list("").await), ["Misc", "Rust lifetimes", "Paris trip"]);
    let first = list("?limit=2").await;
    assert_eq!(titles(&first), ["Misc", "Rust lifetimes"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) =
        d.call(Method::GET, &format!("/api/conversations?limit=2&cursor={cursor}"), Some(&token), None).await;
    assert_eq!((titles(&second), second["next_cursor"].is_null()), (vec!["Paris trip".to_owned()], true));

    assert_eq!(titles(&list("?model=beta").await), ["Rust lifetimes"]);
    let (_, in_folder) =
        d.call(Method::GET, &format!("/api/conversations?folder_id={}", id(&folder)), Some(&token), None).await;
    assert_eq!(titles(&in_folder), ["Paris trip"]);

    // Search: titles and message content, every word, any case, whole words only.
    assert_eq!(titles(&list("?q=paris").await), ["Paris trip"]);
    assert_eq!(titles(&list("?q=louvre%20HOURS").await), ["Misc"]);
    assert_eq!(titles(&list("?q=louvre%20paris").await), Vec::<String>::new());
    assert_eq!(titles(&list("?q=lifetime").await), Vec::<String>::new());
    assert_eq!(titles(&list("?q=%22%29%20OR%20%2A").await), Vec::<String>::new(), "syntax is not interpreted");

    // Pinned and archived.
    let patch = |c: &Value, body: Value| {
        let (d, token, path) = (&d, &token, format!("/api/conversations/{}", id(c)));
        async move { d.call(Method::PATCH, &path, Some(token), Some(body)).await }
    };
    assert_eq!(patch(&rust, json!({"pinned": true})).await.0, StatusCode::OK);
    assert_eq!(patch(&paris, json!({"archived": true})).await.0, StatusCode::OK);
    assert_eq!(titles(&list("?pinned=true").await), ["Rust lifetimes"]);
    assert_eq!(titles(&list("").await), ["Rust lifetimes", "Misc"]);
    assert_eq!(titles(&list("?archived=true").await), ["Paris trip"]);
    let (status, body) = d.call(Method::GET, "/api/conversations?cursor=garbage", Some(&token), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_cursor")));
}

#[tokio::test]
async fn notes_and_feedback_annotate_replies() {
    let node = FakeOllama::start("n5", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("gus").await;
    let cid = id(&create(&d, &token, json!({"model": "alpha", "title": "t"})).await);
    let ex = exchange(&d, &token, &cid, json!({"content": "hi"})).await;
    let reply = ex["reply"]["id"].as_str().unwrap();
    let prompt = ex["message"]["id"].as_str().unwrap();

    let (status, note) = d
        .call(
            Method::POST,
            "/api/notes",
            Some(&token),
            Some(json!({"message_id": reply, "start": 0, "end": 5, "text": "greeting"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!((note["conversation_id"].as_str(), note["end"].as_i64()), (Some(cid.as_str()), Some(5)));
    for (body, code) in [
        (json!({"message_id": reply, "start": 3, "end": 3, "text": ""}), "invalid_range"),
        (json!({"message_id": reply, "start": 0, "end": 99, "text": ""}), "invalid_range"),
        (json!({"message_id": prompt, "start": 0, "end": 1, "text": ""}), "not_a_reply"),
    ] {
        let (status, problem) = d.call(Method::POST, "/api/notes", Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }
    let (status, note) = d
        .call(
            Method::PATCH,
            &format!("/api/notes/{}", id(&note)),
            Some(&token),
            Some(json!({"text": "hello!", "end": 13})),
        )
        .await;
    assert_eq!((status, note["text"].as_str(), note["end"].as_i64()), (StatusCode::OK, Some("hello!"), Some(13)));
    let (_, by_conversation) =
        d.call(Method::GET, &format!("/api/notes?conversation_id={cid}"), Some(&token), None).await;
    assert_eq!(by_conversation.as_array().unwrap().len(), 1);
    let (status, problem) = d.call(Method::GET, "/api/notes", Some(&token), None).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));

    let (status, fb) =
        d.call(Method::POST, "/api/feedback", Some(&token), Some(json!({"message_id": reply, "rating": "up"}))).await;
    assert_eq!((status, fb["rating"].as_str()), (StatusCode::CREATED, Some("up")));
    let (status, problem) =
        d.call(Method::POST, "/api/feedback", Some(&token), Some(json!({"message_id": reply, "rating": "down"}))).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("feedback_exists")));
    let (status, fb) = d
        .call(
            Method::PATCH,
            &format!("/api/feedback/{}", id(&fb)),
            Some(&token),
            Some(json!({"rating": "down", "comment": "too short"})),
        )
        .await;
    assert_eq!(
        (status, fb["rating"].as_str(), fb["comment"].as_str()),
        (StatusCode::OK, Some("down"), Some("too short"))
    );
    let (_, list) = d.call(Method::GET, &format!("/api/feedback?message_id={reply}"), Some(&token), None).await;
    assert_eq!(list[0]["id"], fb["id"]);
    let (status, problem) =
        d.call(Method::POST, "/api/feedback", Some(&token), Some(json!({"message_id": reply, "rating": 5}))).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
        "{problem}"
    );

    // Deleting the conversation takes its notes and feedback along.
    assert_eq!(
        d.call(Method::DELETE, &format!("/api/notes/{}", id(&note)), Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        d.call(Method::GET, &format!("/api/notes/{}", id(&note)), Some(&token), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        d.call(Method::DELETE, &format!("/api/conversations/{cid}"), Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        d.call(Method::GET, &format!("/api/feedback/{}", id(&fb)), Some(&token), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_export_imports_back_with_every_branch_and_reads_as_markdown() {
    let node = FakeOllama::start("n6", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("hal").await;
    let cid = id(&create(&d, &token, json!({"model": "alpha", "title": "Original", "system_prompt": "be kind"})).await);
    let first = exchange(&d, &token, &cid, json!({"content": "first"})).await;
    exchange(&d, &token, &cid, json!({"content": "second"})).await;
    exchange(&d, &token, &cid, json!({"content": "first, edited", "edit_of": first["message"]["id"]})).await;

    let res = d.client.get(d.at(&format!("/api/conversations/{cid}/export"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    let export: Value = res.json().await.unwrap();
    assert_eq!(export["format"], "ollamanet.conversation.v1");
    assert_eq!(export["messages"].as_array().unwrap().len(), 6);

    let (status, imported) =
        d.call(Method::POST, "/api/conversations/import", Some(&token), Some(export.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let new_id = id(&imported);
    assert_ne!(new_id, cid);
    assert_eq!((imported["title"].as_str(), imported["system_prompt"].as_str()), (Some("Original"), Some("be kind")));
    let shape = |list: Vec<Value>| -> Vec<(String, String, usize)> {
        list.iter()
            .map(|m| {
                let siblings = m["sibling_ids"].as_array().unwrap().len();
                (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned(), siblings)
            })
            .collect()
    };
    assert_eq!(shape(messages(&d, &token, &new_id, "tree").await), shape(messages(&d, &token, &cid, "tree").await));
    assert_eq!(contents(&messages(&d, &token, &new_id, "path").await), ["first, edited", "Hello from n6"]);

    let res = d
        .client
        .get(d.at(&format!("/api/conversations/{cid}/export?format=markdown")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/markdown; charset=utf-8");
    let md = res.text().await.unwrap();
    assert!(md.starts_with("# Original\n"), "{md}");
    assert!(md.contains("## You\n\nfirst, edited\n\n## Assistant\n\nHello from n6"), "{md}");

    // A file that is not an export, or whose messages point at missing parents, is refused.
    let mut broken = export.clone();
    broken["messages"][1]["parent_id"] = json!(uuid::Uuid::now_v7());
    let (status, problem) = d.call(Method::POST, "/api/conversations/import", Some(&token), Some(broken)).await;
    assert_eq!(
        (status, problem["errors"][0]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_parent"))
    );
    let mut wrong = export;
    wrong["format"] = json!("something.else");
    let (status, _) = d.call(Method::POST, "/api/conversations/import", Some(&token), Some(wrong)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Another user's ids, in paths, queries and bodies, get the same 404 as ids that do not exist,
/// and nothing of the owner's leaks into the answers.
#[tokio::test]
async fn nothing_of_another_users_can_be_read_changed_or_used() {
    let node = FakeOllama::start("n7", &["alpha"]).await;
    let d = deployment(&node).await;
    let owner = d.user_token("olive").await;
    let (_, folder) = d.call(Method::POST, "/api/folders", Some(&owner), Some(json!({"name": "Secret folder"}))).await;
    let c = create(&d, &owner, json!({"model": "alpha", "title": "Secret title", "folder_id": folder["id"]})).await;
    let ex = exchange(&d, &owner, &id(&c), json!({"content": "secret content"})).await;
    let reply = ex["reply"]["id"].as_str().unwrap().to_owned();
    let prompt = ex["message"]["id"].as_str().unwrap().to_owned();
    let (_, note) = d
        .call(
            Method::POST,
            "/api/notes",
            Some(&owner),
            Some(json!({"message_id": reply, "start": 0, "end": 1, "text": "secret note"})),
        )
        .await;
    let (_, feedback) = d
        .call(
            Method::POST,
            "/api/feedback",
            Some(&owner),
            Some(json!({"message_id": reply, "rating": "up", "comment": "secret"})),
        )
        .await;
    let (cid, fid, nid, fbid) = (id(&c), id(&folder), id(&note), id(&feedback));

    let intruder = d.user_token("mallory").await;
    let own = create(&d, &intruder, json!({"model": "alpha", "title": "mine"})).await;
    let own_id = id(&own);
    let secrets =
        [cid.as_str(), fid.as_str(), reply.as_str(), prompt.as_str(), nid.as_str(), fbid.as_str(), "Secret", "secret"];
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/folders/{fid}"), None),
        (Method::PATCH, format!("/api/folders/{fid}"), Some(json!({"name": "mine now"}))),
        (Method::DELETE, format!("/api/folders/{fid}?recursive=true"), None),
        (Method::POST, "/api/folders".into(), Some(json!({"name": "inside", "parent_id": fid}))),
        (Method::GET, format!("/api/conversations/{cid}"), None),
        (Method::PATCH, format!("/api/conversations/{cid}"), Some(json!({"title": "mine now"}))),
        (Method::DELETE, format!("/api/conversations/{cid}"), None),
        (Method::GET, format!("/api/conversations?folder_id={fid}"), None),
        (Method::POST, "/api/conversations".into(), Some(json!({"model": "alpha", "folder_id": fid}))),
        (Method::GET, format!("/api/conversations/{cid}/messages"), None),
        (Method::GET, format!("/api/conversations/{cid}/messages?view=tree"), None),
        (Method::POST, format!("/api/conversations/{cid}/messages"), Some(json!({"content": "hi", "stream": false}))),
        (Method::POST, format!("/api/conversations/{cid}/messages/{reply}/regenerate"), Some(json!({"stream": false}))),
        (Method::POST, format!("/api/conversations/{cid}/stop"), None),
        (Method::GET, format!("/api/conversations/{cid}/stream"), None),
        (Method::GET, format!("/api/conversations/{cid}/stream?last_event_id={reply}:0"), None),
        (Method::GET, format!("/api/conversations/{cid}/export"), None),
        (Method::GET, format!("/api/conversations/{cid}/export?format=markdown"), None),
        (
            Method::POST,
            format!("/api/conversations/import?folder_id={fid}"),
            Some(json!({
                "format": "ollamanet.conversation.v1", "title": "t", "model": "alpha", "system_prompt": null,
                "created_at": "2025-01-01T00:00:00Z", "active_message_id": null, "messages": []
            })),
        ),
        // The intruder's own conversation, pointed at the owner's things.
        (Method::PATCH, format!("/api/conversations/{own_id}"), Some(json!({"folder_id": fid}))),
        (Method::PATCH, format!("/api/conversations/{own_id}"), Some(json!({"active_message_id": reply}))),
        (
            Method::POST,
            format!("/api/conversations/{own_id}/messages"),
            Some(json!({"content": "x", "parent_id": reply, "stream": false})),
        ),
        (
            Method::POST,
            format!("/api/conversations/{own_id}/messages"),
            Some(json!({"content": "x", "edit_of": prompt, "stream": false})),
        ),
        (
            Method::POST,
            format!("/api/conversations/{own_id}/messages/{reply}/regenerate"),
            Some(json!({"stream": false})),
        ),
        (Method::GET, format!("/api/notes/{nid}"), None),
        (Method::PATCH, format!("/api/notes/{nid}"), Some(json!({"text": "mine now"}))),
        (Method::DELETE, format!("/api/notes/{nid}"), None),
        (Method::GET, format!("/api/notes?message_id={reply}"), None),
        (Method::GET, format!("/api/notes?conversation_id={cid}"), None),
        (Method::POST, "/api/notes".into(), Some(json!({"message_id": reply, "start": 0, "end": 1, "text": "x"}))),
        (Method::GET, format!("/api/feedback/{fbid}"), None),
        (Method::PATCH, format!("/api/feedback/{fbid}"), Some(json!({"rating": "down"}))),
        (Method::DELETE, format!("/api/feedback/{fbid}"), None),
        (Method::GET, format!("/api/feedback?message_id={reply}"), None),
        (Method::GET, format!("/api/feedback?conversation_id={cid}"), None),
        (Method::POST, "/api/feedback".into(), Some(json!({"message_id": reply, "rating": "down"}))),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = d.call(method.clone(), &path, Some(&intruder), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "not_found", "{method} {path}");
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{method} {path} leaks {secret}: {text}");
        }
    }
    // Lists show only the caller's own things.
    let (_, list) = d.call(Method::GET, "/api/conversations?q=secret", Some(&intruder), None).await;
    assert_eq!(list["items"], json!([]));
    let (_, folders) = d.call(Method::GET, "/api/folders", Some(&intruder), None).await;
    assert!(!folders.to_string().contains(&fid));

    // And the owner's things are as they were.
    let (_, c) = d.call(Method::GET, &format!("/api/conversations/{cid}"), Some(&owner), None).await;
    assert_eq!((c["title"].as_str(), c["folder_id"].as_str()), (Some("Secret title"), Some(fid.as_str())));
    assert_eq!(contents(&messages(&d, &owner, &cid, "tree").await), ["secret content", "Hello from n7"]);
    let (status, note) = d.call(Method::GET, &format!("/api/notes/{nid}"), Some(&owner), None).await;
    assert_eq!((status, note["text"].as_str()), (StatusCode::OK, Some("secret note")));
    let (status, fb) = d.call(Method::GET, &format!("/api/feedback/{fbid}"), Some(&owner), None).await;
    assert_eq!((status, fb["rating"].as_str()), (StatusCode::OK, Some("up")));
    assert!(
        messages(&d, &intruder, &own_id, "tree").await.is_empty(),
        "no message went into the intruder's own conversation"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_problems() {
    let node = FakeOllama::start("n8", &["alpha"]).await;
    let d = deployment(&node).await;
    let token = d.user_token("ivy").await;
    let cid = id(&create(&d, &token, json!({"model": "alpha", "title": "t"})).await);
    let long = "x".repeat(100_001);
    let cases: Vec<(Method, String, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/conversations".into(),
            json!({"model": "alpha", "owner_id": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/conversations".into(),
            json!({"model": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/conversations".into(),
            json!({"model": "a b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/conversations".into(),
            json!({"model": "alpha", "title": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("/api/conversations/{cid}/messages"),
            json!({"content": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("/api/conversations/{cid}/messages"),
            json!({"content": long}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("/api/conversations/{cid}/messages"),
            json!({"content": "x", "edit_of": cid, "parent_id": cid}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("/api/conversations/{cid}/messages"),
            json!({"content": "x", "options": {"temperature": "hot"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // A malformed id names nothing, like an unknown one.
        (Method::GET, "/api/conversations/not-a-uuid".into(), Value::Null, StatusCode::NOT_FOUND, "not_found"),
        (
            Method::GET,
            format!("/api/conversations/{cid}/messages?view=graph"),
            Value::Null,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::GET,
            format!("/api/conversations/{cid}/export?format=xml"),
            Value::Null,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (Method::GET, "/api/conversations?limit=abc".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_query"),
        (
            Method::POST,
            "/api/folders".into(),
            json!({"name": "x".repeat(101)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, problem) = d.call(method.clone(), &path, Some(&token), body).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{method} {path}: {problem}");
    }
    // The model that is not there fails the reply with a clear error event, and nothing breaks.
    let other = id(&create(&d, &token, json!({"model": "nosuchmodel", "title": "t"})).await);
    let events = send(&d, &token, &other, json!({"content": "hi"})).await.rest().await;
    let last = events.last().unwrap();
    assert_eq!((last.event.as_str(), last.data["code"].as_str()), ("error", Some("model_not_found")), "{events:?}");
    let path = messages(&d, &token, &other, "path").await;
    assert_eq!(path[1]["status"], "failed");
    assert!(path[1]["error"].as_str().unwrap().contains("not found"));
    let (status, _) = d.call(Method::GET, "/api/conversations", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The whole platform with the real SmolLM2 on the embedded engine: a folder and a
/// conversation, a streamed reply, an edit, a regeneration, a stop, a resume after a disconnect,
/// and an export imported back.
#[tokio::test]
async fn slow_a_conversation_with_smollm2_through_the_whole_platform() {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.engine.threads = Some(2);
    config.engine.num_ctx = 2048;
    ollamanet_engine::demo(infra.data_dir(), &config.engine, |m| eprintln!("{m}")).await.expect("demo models");
    let d = Deployment::start_with(crate::helpers::Mode::AllInOne, infra, config).await.patient();
    let token = d.user_token("joan").await;
    let (_, folder) = d.call(Method::POST, "/api/folders", Some(&token), Some(json!({"name": "Geography"}))).await;
    let c = create(&d, &token, json!({"model": "smollm2:135m", "folder_id": folder["id"]})).await;
    let cid = id(&c);
    let greedy = |n: u32| json!({"temperature": 0, "num_predict": n});

    // A streamed reply, saved with its usage; the conversation is named after it.
    let events = send(&d, &token, &cid, json!({"content": "What is the capital of France?", "options": greedy(48)}))
        .await
        .rest()
        .await;
    assert!(deltas(&events).contains("Paris"), "{events:?}");
    let done = events.iter().find(|e| e.event == "done").expect("done");
    assert_eq!(done.data["status"], "complete");
    assert!(done.data["usage"]["completion_tokens"].as_i64().unwrap() > 0);
    let title = events.last().unwrap();
    assert_eq!(title.event, "title", "{events:?}");
    let (_, c) = d.call(Method::GET, &format!("/api/conversations/{cid}"), Some(&token), None).await;
    assert_eq!(c["title"], title.data["title"]);
    let first = messages(&d, &token, &cid, "path").await;
    assert_eq!(first[1]["content"].as_str(), Some(deltas(&events).as_str()));

    // Edit the question: a second branch; regenerate its answer: a third reply.
    let question = first[0]["id"].as_str().unwrap();
    let edited = exchange(
        &d,
        &token,
        &cid,
        json!({"content": "What is the capital of Italy?", "edit_of": question, "options": greedy(32)}),
    )
    .await;
    assert!(!edited["reply"]["content"].as_str().unwrap().is_empty());
    let reply = edited["reply"]["id"].as_str().unwrap();
    let res = d
        .client
        .post(d.at(&format!("/api/conversations/{cid}/messages/{reply}/regenerate")))
        .bearer_auth(&token)
        .json(&json!({"stream": false, "options": {"temperature": 0.9, "seed": 7, "num_predict": 32}}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let path = messages(&d, &token, &cid, "path").await;
    assert_eq!(path[0]["sibling_ids"].as_array().unwrap().len(), 2);
    assert_eq!(path[1]["sibling_ids"].as_array().unwrap().len(), 2);

    // Stop a long answer after its first words.
    let mut long = send(
        &d,
        &token,
        &cid,
        json!({"content": "Tell me a very long story about a dragon.", "options": greedy(1500)}),
    )
    .await;
    long.next().await.unwrap();
    let said = long.next().await.unwrap();
    assert_eq!(said.event, "delta");
    let (_, stopped) = d.call(Method::POST, &format!("/api/conversations/{cid}/stop"), Some(&token), None).await;
    assert_eq!(stopped["stopping"], true);
    let rest = long.rest().await;
    assert_eq!(rest.last().unwrap().data["status"], "stopped");
    let stored = messages(&d, &token, &cid, "path").await.pop().unwrap();
    assert_eq!(stored["status"], "stopped");
    assert!(stored["usage"]["completion_tokens"].is_null() || stored["content"].as_str().unwrap().len() < 6000);

    // Drop the connection after the first words, come back, and get the rest.
    let mut counting =
        send(&d, &token, &cid, json!({"content": "Count from one to twenty.", "options": greedy(96)})).await;
    counting.next().await.unwrap();
    let first_words = counting.next().await.unwrap();
    drop(counting);
    let res = d
        .client
        .get(d.at(&format!("/api/conversations/{cid}/stream")))
        .bearer_auth(&token)
        .header("Last-Event-ID", &first_words.id)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    let resumed = SseReader::new(res).rest().await;
    assert_eq!(resumed.last().unwrap().event, "done", "{resumed:?}");
    let whole = format!("{}{}", first_words.data["content"].as_str().unwrap(), deltas(&resumed));
    let stored = messages(&d, &token, &cid, "path").await.pop().unwrap();
    assert_eq!((stored["content"].as_str(), stored["status"].as_str()), (Some(whole.as_str()), Some("complete")));

    // Export and import back: the same tree.
    let (_, export) = d.call(Method::GET, &format!("/api/conversations/{cid}/export"), Some(&token), None).await;
    let (status, imported) = d.call(Method::POST, "/api/conversations/import", Some(&token), Some(export)).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(
        contents(&messages(&d, &token, &id(&imported), "tree").await),
        contents(&messages(&d, &token, &cid, "tree").await)
    );
}
