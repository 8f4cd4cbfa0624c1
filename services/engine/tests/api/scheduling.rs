use std::time::Duration;

use serde_json::json;

use crate::helpers::{TINY, TestEngine, eventually};

/// Generates until the client goes away (the context shifts when full).
fn endless() -> serde_json::Value {
    json!({"model": TINY, "prompt": "go on", "options": {"num_predict": -1, "temperature": 0.7}})
}

#[tokio::test]
async fn a_full_queue_answers_503() {
    let e = TestEngine::tiny_with(|c| c.max_queue = 1).await;
    let (running, _) = e.open_stream("/api/generate", &endless()).await;
    eventually(Duration::from_secs(10), "the first request to run", || async { e.stats.running(TINY) == 1 }).await;

    // The second request waits for the only worker.
    let waiting = {
        let client = e.client.clone();
        let url = e.url("/api/generate");
        tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&json!({"model": TINY, "prompt": "x", "stream": false, "options": {"num_predict": 2}}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        })
    };
    eventually(Duration::from_secs(10), "the second request to queue", || async { e.stats.queue_depth(TINY) == 1 })
        .await;

    // The third has no room.
    let res = e.post("/api/generate", &json!({"model": TINY, "prompt": "y", "stream": false})).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body, json!({"error": "server busy, please try again.  maximum pending requests exceeded"}));
    assert_eq!(e.stats.requests_rejected(), 1);

    // Once the first goes away, the waiting one runs.
    drop(running);
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["eval_count"], 2);
}

#[tokio::test]
async fn parallel_sequences_run_at_once() {
    let e = TestEngine::tiny_with(|c| c.parallel = 2).await;
    let (a, _) = e.open_stream("/api/generate", &endless()).await;
    let (b, _) = e
        .open_stream(
            "/api/chat",
            &json!({"model": TINY, "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": -1}}),
        )
        .await;
    eventually(Duration::from_secs(10), "two sequences to run", || async { e.stats.running(TINY) == 2 }).await;
    assert_eq!(e.stats.queue_depth(TINY), 0);
    drop((a, b));
    eventually(Duration::from_secs(10), "both to stop", || async { e.stats.running(TINY) == 0 }).await;
    assert_eq!(e.stats.requests_cancelled(), 2);
}

#[tokio::test]
async fn a_client_that_disconnects_stops_the_decoding() {
    let e = TestEngine::with_tiny().await;
    let (mut res, _) = e.open_stream("/api/generate", &endless()).await;
    for _ in 0..3 {
        res.chunk().await.unwrap().unwrap();
    }
    drop(res);
    eventually(Duration::from_secs(10), "the generation to be cancelled", || async {
        e.stats.requests_cancelled() == 1
    })
    .await;
    assert_eq!(e.stats.running(TINY), 0);
    // The worker is idle: the counter no longer moves.
    let after = e.stats.tokens_generated();
    assert!(after < 100_000, "{after} tokens: decoding went on");
    let again = e.stats.tokens_generated();
    assert_eq!(after, again);
    // And the model still serves.
    let b = e.complete("x", json!({"num_predict": 2})).await;
    assert_eq!(b["eval_count"], 2);
    assert_eq!(e.stats.tokens_generated(), after + 2);
}
