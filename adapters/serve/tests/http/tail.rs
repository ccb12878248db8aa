//! `GET /v0/pools/{pool}/tail`: query parameters, live wake-ups, gaps and
//! terminal error lines.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::common::{next_line, Harness};

fn seqs(lines: &[serde_json::Value]) -> Vec<u64> {
    lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn since_max_and_timeout() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    for n in 1..=5 {
        h.append("demo", json!({ "n": n }), &[]).await;
    }
    let reply = h
        .call(Method::GET, "/v0/pools/demo/tail?since_seq=2&max=2", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version(), Some("0"));
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/jsonl"
    );
    let lines = reply.lines();
    assert_eq!(seqs(&lines), [2, 3]);
    assert_eq!(lines[0]["data"], json!({"n": 2}));

    // Without since_seq: from the oldest held; the stream ends cleanly at
    // its timeout.
    let reply = h
        .call(Method::GET, "/v0/pools/demo/tail?timeout_ms=20", None)
        .await;
    assert_eq!(seqs(&reply.lines()), [1, 2, 3, 4, 5]);
    let reply = h
        .call(
            Method::GET,
            "/v0/pools/demo/tail?since_seq=9&timeout_ms=0",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let reply = h.call(Method::GET, "/v0/pools/demo/tail?max=0", None).await;
    assert!(reply.body.is_empty());

    let err = h
        .call(Method::GET, "/v0/pools/demo/tail?timeout_ms=30001", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    assert_eq!(err["message"], "tail timeout exceeds server limit");
    let err = h
        .call(Method::GET, "/v0/pools/demo/tail?gap_policy=skip", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    assert_eq!(err["message"], "invalid tail gap policy");
    h.call(Method::GET, "/v0/pools/demo/tail?since_seq=-1", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.call(Method::GET, "/v0/pools/a%2Fb/tail", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn tags_are_all_required() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    h.append("demo", json!({"i": 1}), &["a"]).await;
    h.append("demo", json!({"i": 2}), &["b", "a"]).await;
    h.append("demo", json!({"i": 3}), &["b"]).await;
    h.append("demo", json!({"i": 4}), &["a,b"]).await;
    let h = &h;
    let tail = |query: &str| {
        let path = format!("/v0/pools/demo/tail?since_seq=1&timeout_ms=10&{query}");
        async move { seqs(&h.call(Method::GET, &path, None).await.lines()) }
    };
    assert_eq!(tail("tag=a").await, [1, 2]);
    assert_eq!(tail("tag=a&tag=b").await, [2]);
    assert_eq!(tail("tag=+b+&tag=").await, [2, 3]);
    assert_eq!(tail("tag=a%2Cb").await, [4]);
    assert_eq!(tail("tag=c").await, Vec::<u64>::new());
    // `max` counts delivered messages, after filtering.
    assert_eq!(tail("tag=b&max=1").await, [2]);
}

/// Fills a small pool until its first messages are overwritten; returns
/// the oldest seq held.
async fn overwritten(h: &Harness) -> u64 {
    assert_eq!(h.create("small", Some(16384)).await.status, StatusCode::OK);
    let blob = "x".repeat(1000);
    for n in 0..40 {
        h.append("small", json!({ "n": n, "blob": blob }), &[])
            .await;
    }
    let info = h
        .call(Method::GET, "/v0/pools/small/info", None)
        .await
        .json();
    let oldest = info["pool"]["bounds"]["oldest"].as_u64().unwrap();
    assert!(oldest > 1, "{info}");
    oldest
}

#[tokio::test]
async fn retention_gaps() {
    let h = Harness::start().await;
    let oldest = overwritten(&h).await;
    let reply = h
        .call(
            Method::GET,
            "/v0/pools/small/tail?since_seq=1&gap_policy=error",
            None,
        )
        .await;
    // Errors after the stream started are its one terminal line.
    assert_eq!(reply.status, StatusCode::OK);
    let lines = reply.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let err = &lines[0]["error"];
    assert_eq!(err["kind"], "RetentionGap");
    assert_eq!(err["seq"], 1);
    assert_eq!(
        err["message"],
        format!(
            "messages 1-{} are no longer retained; the next available message is {oldest}",
            oldest - 1
        )
    );

    let reply = h
        .call(
            Method::GET,
            "/v0/pools/small/tail?since_seq=1&max=2&gap_policy=continue",
            None,
        )
        .await;
    assert_eq!(seqs(&reply.lines()), [oldest, oldest + 1]);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_pool_is_one_error_line() {
    let h = Harness::start().await;
    let reply = h.call(Method::GET, "/v0/pools/nope/tail", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let lines = reply.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"]["kind"], "NotFound");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn a_live_append_wakes_the_tail() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let mut client = h.connect().await;
    let req = client.request(Method::GET, "/v0/pools/demo/tail?since_seq=1", None);
    let response = client.send(req).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut buf = Vec::new();
    for n in 1..=3 {
        let sent = h.append("demo", json!({ "n": n }), &["live"]).await;
        let line = next_line(&mut body, &mut buf).await.unwrap();
        assert_eq!(line, sent);
    }
    h.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_tails_and_syncs() {
    let mut h = Harness::start().await;
    h.create("demo", None).await;
    h.append("demo", json!({"n": 1}), &[]).await;
    let mut client = h.connect().await;
    let req = client.request(Method::GET, "/v0/pools/demo/tail", None);
    let mut body = client.send(req).await.into_body();
    let mut buf = Vec::new();
    assert_eq!(next_line(&mut body, &mut buf).await.unwrap()["seq"], 1);
    h.begin_stop();
    // The tail ends cleanly: no error line, no truncated chunk.
    assert_eq!(next_line(&mut body, &mut buf).await, None);
    h.join().await.unwrap();
    let pool = plex_store::Pool::open_read_only(h.dir.path().join("demo.plex")).unwrap();
    assert_eq!(pool.info().synced, plex_store::Seq(1));
}
