//! Limits a client cannot push past, the loopback guard, and binding.

use std::time::Duration;

use hyper::{Method, StatusCode};
use plex_serve::{Config, Limits, ServeError, Server};
use serde_json::json;

use crate::common::{next_line, Harness};

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let max = Limits::default().max_body_bytes;
    let body = |len: usize| {
        // `{"data":{"s":"xxx…"}}` of exactly `len` bytes.
        let fill = "x".repeat(len - r#"{"data":{"s":""}}"#.len());
        format!(r#"{{"data":{{"s":"{fill}"}}}}"#)
    };
    let reply = h
        .call_raw(Method::POST, "/v0/pools/demo/append", &body(max + 1))
        .await;
    let err = reply.error(StatusCode::PAYLOAD_TOO_LARGE, "Usage");
    assert!(
        err["message"].as_str().unwrap().contains("1048576"),
        "{err}"
    );
    // At the limit the body is read; the pool's own limit then applies.
    let reply = h
        .call_raw(Method::POST, "/v0/pools/demo/append", &body(max))
        .await;
    assert_ne!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    let reply = h
        .call_raw(Method::POST, "/v0/pools/demo/append", &body(1000))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    h.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_tails_are_capped_and_a_disconnect_frees_a_slot() {
    let mut limits = Limits::default();
    limits.max_tails = 2;
    let h = Harness::with_limits(limits).await;
    h.create("demo", None).await;
    h.append("demo", json!({"n": 1}), &[]).await;

    let mut tails = Vec::new();
    for _ in 0..2 {
        let mut client = h.connect().await;
        let req = client.request(Method::GET, "/v0/pools/demo/tail", None);
        let mut body = client.send(req).await.into_body();
        // The tail is running: it delivered what the pool holds.
        let mut buf = Vec::new();
        assert_eq!(next_line(&mut body, &mut buf).await.unwrap()["seq"], 1);
        tails.push((client, body));
    }
    let err = h
        .call(Method::GET, "/v0/pools/demo/tail", None)
        .await
        .error(StatusCode::LOCKED, "Busy");
    assert_eq!(err["message"], "too many concurrent tail requests");

    // The client goes away mid-tail (no append will ever wake that tail):
    // the server notices the closed connection and frees the slot.
    drop(tails.pop());
    let mut attempts = 0;
    loop {
        let reply = h
            .call(Method::GET, "/v0/pools/demo/tail?timeout_ms=0", None)
            .await;
        if reply.status == StatusCode::OK {
            break;
        }
        reply.error(StatusCode::LOCKED, "Busy");
        attempts += 1;
        assert!(attempts < 2000, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.stop().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let mut limits = Limits::default();
    limits.max_connections = 1;
    let h = Harness::with_limits(limits).await;
    let mut first = h.connect().await;
    assert_eq!(
        first.call(Method::GET, "/healthz", None).await.status,
        StatusCode::OK
    );
    // The second connection waits in the backlog, unanswered, while the
    // first is open (a bounded wait that only a broken limit ends early).
    let mut second = tokio::spawn({
        let addr = h.addr;
        async move {
            let mut client = crate::common::Client::connect(addr).await;
            client.call(Method::GET, "/healthz", None).await.status
        }
    });
    let waited = tokio::time::timeout(Duration::from_millis(200), &mut second).await;
    assert!(waited.is_err(), "served beyond the connection limit");
    drop(first);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn host_and_origin_guard_against_rebinding() {
    let h = Harness::start().await;
    let mut client = h.connect().await;
    let cases = [
        (Some("evil.example:9700"), None),
        (Some("10.1.2.3"), None),
        (None, Some("http://evil.example")),
        (None, Some("null")),
        (None, Some("https://127.0.0.1")),
    ];
    for (host, origin) in cases {
        let mut req = client.request(Method::POST, "/v0/pools", Some(json!({"pool": "x"})));
        if let Some(host) = host {
            req.headers_mut().insert("host", host.parse().unwrap());
        }
        if let Some(origin) = origin {
            req.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let err = client
            .fetch(req)
            .await
            .error(StatusCode::FORBIDDEN, "Permission");
        assert_eq!(err["message"], "untrusted local request origin");
    }
    // Nothing was created, and the connection is still usable.
    let mut req = client.request(Method::GET, "/v0/pools", None);
    let origin = format!("http://{}", h.addr);
    req.headers_mut().insert("origin", origin.parse().unwrap());
    let reply = client.fetch(req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"pools": []}));
    let mut req = client.request(Method::GET, "/healthz", None);
    req.headers_mut().insert(
        "host",
        format!("localhost:{}", h.addr.port()).parse().unwrap(),
    );
    assert_eq!(client.fetch(req).await.status, StatusCode::OK);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn listeners_off_loopback_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path()).addr("0.0.0.0:0".parse().unwrap());
    let err = Server::bind(config).await.unwrap_err();
    assert!(matches!(err, ServeError::OffLoopback { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    let mut limits = Limits::default();
    limits.max_tails = 0;
    let zero = Config::new(dir.path())
        .addr("127.0.0.1:0".parse().unwrap())
        .limits(limits);
    assert!(matches!(
        Server::bind(zero).await.unwrap_err(),
        ServeError::Limit("max_tails")
    ));
    let taken = Server::bind(Config::new(dir.path()).addr("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let again = Config::new(dir.path()).addr(taken.local_addr());
    assert!(matches!(
        Server::bind(again).await.unwrap_err(),
        ServeError::Bind { .. }
    ));
}
