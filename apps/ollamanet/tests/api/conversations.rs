//! The conversation service through the gateway: replies as events, branches, stop, resume after
//! a disconnect, folders, search, notes, feedback, export and import. The engine is a fake Ollama
//! node (a test double for the engines outside the platform), so that a test can hold a reply
//! mid-stream and see exactly what the model was sent; `slow_` tests use the real SmolLM2.

use std::time::Duration;

use kit::testing::TestInfra;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::fake_ollama::FakeOllama;
use crate::helpers::{Deployment, SseReader, WITHOUT_ENGINE, base_config, deltas};

async fn deployment(node: &FakeOllama) -> Deployment {
    let infra = TestInfra::new().await;
    let mut config = base_config(&infra);
    config.inference.nodes = vec![node.url.clone()];
    config.inference.probe_interval = Duration::from_millis(200);
    let d = Deployment::in_process_with(infra, config, WITHOUT_ENGINE).await;
    // The node is usable once the first probe has seen it.
    let token = d.user_token("prober").await;
    crate::helpers::eventually("the node to be probed", async || {
        d.call(Method::GET, "/ollama/api/tags", Some(&token), None).await.1["models"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    d
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
