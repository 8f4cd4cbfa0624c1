//! Per-user quotas of the conversation service, each hit through the gateway: conversations,
//! documents per conversation and in all, stored bytes, and replies followed at once. Each is
//! refused with its own code and lifts when the user makes room; other users are not touched.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::documents::{conversation, upload};
use crate::fake_ollama::{FakeOllama, platform_on};
use crate::helpers::{Deployment, SseReader, eventually};

fn code(body: &Value) -> Option<&str> {
    body["code"].as_str()
}

async fn create(d: &Deployment, token: &str) -> (StatusCode, Value) {
    d.call(Method::POST, "/api/conversations", Some(token), Some(json!({"model": "alpha", "title": "Q"}))).await
}

/// Sends a message and returns the open stream of its reply (or the refusal).
async fn send(d: &Deployment, token: &str, conversation: &str) -> Result<SseReader, (StatusCode, Value)> {
    let res = d
        .client
        .post(d.at(&format!("/api/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .json(&json!({"content": "hello"}))
        .send()
        .await
        .unwrap();
    if res.status() != StatusCode::OK {
        let status = res.status();
        return Err((status, res.json().await.unwrap()));
    }
    let mut reader = SseReader::new(res);
    assert_eq!(reader.next().await.unwrap().event, "start");
    Ok(reader)
}

#[tokio::test]
async fn conversations_and_documents_are_capped_per_user() {
    let node = FakeOllama::start("quotas", &["alpha", "all-minilm"]).await;
    let d = platform_on(&[&node], |c| {
        let q = &mut c.conversation.quotas;
        q.conversations_per_user = 3;
        q.documents_per_conversation = 2;
        q.documents_per_user = 3;
        q.stored_bytes_per_user = 4096;
    })
    .await;
    let ada = d.user_token("ada").await;

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(conversation(&d, &ada, json!({"model": "alpha", "title": "Q"})).await);
    }
    let (status, body) = create(&d, &ada).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, Some("too_many_conversations")), "{body}");
    let export = json!({
        "format": "ollamanet.conversation.v1", "title": "Imported", "model": "alpha", "messages": [],
        "created_at": "2026-01-01T00:00:00Z",
    });
    let (status, body) = d.call(Method::POST, "/api/conversations/import", Some(&ada), Some(export)).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, Some("too_many_conversations")), "{body}");

    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let mut kept = Vec::new();
    for i in 0..2 {
        let (status, doc) = upload(&d, &ada, a, "a.txt", format!("Note number {i} about apples.").as_bytes()).await;
        assert_eq!(status, StatusCode::CREATED, "{doc}");
        kept.push(doc["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = upload(&d, &ada, a, "a.txt", b"One note too many.").await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, Some("too_many_documents_in_conversation")), "{body}");
    let (status, body) = upload(&d, &ada, b, "b.txt", b"A note about bananas.").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&d, &ada, c, "c.txt", b"A note about cherries.").await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, Some("too_many_documents")), "{body}");

    // Room made, room used.
    let (status, _) = d.call(Method::DELETE, &format!("/api/documents/{}", kept[0]), Some(&ada), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = upload(&d, &ada, c, "c.txt", b"A note about cherries.").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = d.call(Method::DELETE, &format!("/api/conversations/{c}"), Some(&ada), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = create(&d, &ada).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Stored bytes: 3000 kept, 2000 more would pass 4096.
    let bea = d.user_token("bea").await;
    let mine = conversation(&d, &bea, json!({"model": "alpha", "title": "Mine"})).await;
    let (status, body) = upload(&d, &bea, &mine, "big.txt", "word ".repeat(600).as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&d, &bea, &mine, "more.txt", "more ".repeat(400).as_bytes()).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, Some("storage_quota_exceeded")), "{body}");
    // Another user's quotas are their own: Bea has three conversations too.
    for _ in 0..2 {
        conversation(&d, &bea, json!({"model": "alpha", "title": "Hers"})).await;
    }
}

#[tokio::test]
async fn replies_followed_at_once_are_capped_per_user() {
    let node = FakeOllama::start_with("streams", &["alpha", "all-minilm"], true).await;
    let d = platform_on(&[&node], |c| {
        c.conversation.quotas.open_streams_per_user = 2;
        c.conversation.generate_titles = false;
    })
    .await;
    let ada = d.user_token("ada").await;
    let mut conversations = Vec::new();
    for _ in 0..3 {
        conversations.push(conversation(&d, &ada, json!({"model": "alpha", "title": "S"})).await);
    }
    let first = send(&d, &ada, &conversations[0]).await.unwrap();
    let second = send(&d, &ada, &conversations[1]).await.unwrap();
    let (status, body) = send(&d, &ada, &conversations[2]).await.err().unwrap();
    assert_eq!((status, code(&body)), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_streams")), "{body}");
    // Following one again is a stream too.
    let res = d
        .client
        .get(d.at(&format!("/api/conversations/{}/stream", conversations[0])))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another user is not held to Ada's streams.
    let bea = d.user_token("bea").await;
    let hers = conversation(&d, &bea, json!({"model": "alpha", "title": "S"})).await;
    let theirs = send(&d, &bea, &hers).await.unwrap();

    // A stream the client leaves gives its slot back.
    drop(first);
    eventually("a slot to be given back", async || match send(&d, &ada, &conversations[2]).await {
        Ok(reader) => {
            drop(reader);
            true
        }
        Err((status, _)) => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            false
        }
    })
    .await;
    node.release();
    drop((second, theirs));
}
