//! The web page: its page and assets with their headers, and its event
//! stream (`GET /v0/ui/pools/{pool}/events`): live messages, the tail's
//! query, `Last-Event-ID`, error events, keep-alives, shutdown and slots.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use plex_serve::Limits;
use serde_json::{json, Value};

use crate::common::{Client, Harness, Reply};

/// Checks the headers every response of the page carries.
fn assert_page_headers(reply: &Reply) {
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", reply.headers))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
}

/// The local `src="/…"` and `href="/…"` references of an HTML page.
fn local_references(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"/", "href=\"/"] {
        for (at, _) in html.match_indices(attr) {
            let start = at + attr.len() - 1;
            let end = start + html[start..].find('"').unwrap();
            refs.push(html[start..end].to_owned());
        }
    }
    refs
}

#[tokio::test]
async fn the_page_and_its_assets() {
    let h = Harness::start().await;
    let page = h.call(Method::GET, "/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers.get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    assert_page_headers(&page);
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    // No inline script or style: the policy would block them.
    assert!(!html.contains("<script>") && !html.contains("<style"));
    assert!(!html.contains(" style=\""));
    assert_eq!(h.call(Method::GET, "/ui", None).await.body, page.body);

    let refs = local_references(&html);
    assert_eq!(refs, ["/ui/assets/app.js", "/ui/assets/app.css"]);
    let expected = [
        ("/ui/assets/app.js", "text/javascript; charset=utf-8"),
        ("/ui/assets/app.css", "text/css; charset=utf-8"),
    ];
    for (path, content_type) in expected {
        let asset = h.call(Method::GET, path, None).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert_eq!(asset.headers.get("content-type").unwrap(), content_type);
        assert_page_headers(&asset);
        assert!(!asset.body.is_empty());
    }
    // Message content goes into the page as text only.
    let script = h.call(Method::GET, "/ui/assets/app.js", None).await.text();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!script.contains(sink), "the script uses {sink}");
    }

    let err = h
        .call(Method::GET, "/ui/assets/app.map", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(err["message"], "no such asset: app.map");
    h.call(Method::POST, "/", None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "Usage");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn the_page_is_guarded_like_the_api() {
    let h = Harness::start().await;
    let mut client = h.connect().await;
    for path in ["/", "/ui/assets/app.js", "/v0/ui/pools/demo/events"] {
        let mut req = client.request(Method::GET, path, None);
        req.headers_mut()
            .insert("host", "evil.example:9700".parse().unwrap());
        client
            .fetch(req)
            .await
            .error(StatusCode::FORBIDDEN, "Permission");
        let mut req = client.request(Method::GET, path, None);
        req.headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        client
            .fetch(req)
            .await
            .error(StatusCode::FORBIDDEN, "Permission");
    }
    h.stop().await.unwrap();
}

/// One server-sent event block: its fields in order; a comment line is
/// the field `""`.
type Block = Vec<(String, String)>;

/// An open event stream.
struct Events {
    _client: Client,
    body: Incoming,
    buf: Vec<u8>,
}

impl Events {
    /// Opens `path` (with `last_event_id`), checks the response head and
    /// reads the `retry` prelude.
    async fn open(h: &Harness, path: &str, last_event_id: Option<&str>) -> Events {
        let mut client = h.connect().await;
        let mut req = client.request(Method::GET, path, None);
        if let Some(id) = last_event_id {
            req.headers_mut()
                .insert("last-event-id", id.parse().unwrap());
        }
        let response = client.send(req).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers.get("content-type").unwrap(), "text/event-stream");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(headers.get("plasmite-version").unwrap(), "0");
        let mut events = Events {
            _client: client,
            body: response.into_body(),
            buf: Vec::new(),
        };
        assert_eq!(events.next().await, Some(field("retry", "2000")));
        events
    }

    /// The next block; `None` when the stream ends.
    async fn next(&mut self) -> Option<Block> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..at + 2).collect();
                let text = std::str::from_utf8(&block[..at]).unwrap();
                let fields = text
                    .lines()
                    .map(|line| {
                        let (name, value) = line.split_once(':').unwrap();
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        (name.to_owned(), value.to_owned())
                    })
                    .collect();
                return Some(fields);
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                None => {
                    assert!(self.buf.is_empty(), "partial event: {:?}", self.buf);
                    return None;
                }
            }
        }
    }

    /// The next block, which must be a message: its id and data.
    async fn message(&mut self) -> (u64, Value) {
        let block = self.next().await.expect("a message event");
        match block.as_slice() {
            [(event, kind), (id, seq), (data, envelope)]
                if (event.as_str(), kind.as_str(), id.as_str(), data.as_str())
                    == ("event", "message", "id", "data") =>
            {
                (
                    seq.parse().unwrap(),
                    serde_json::from_str(envelope).unwrap(),
                )
            }
            _ => panic!("not a message event: {block:?}"),
        }
    }

    /// The next block, which must be an error event: its error object.
    async fn error(&mut self, kind: &str) -> Value {
        let block = self.next().await.expect("an error event");
        assert_eq!(block.len(), 2, "{block:?}");
        assert_eq!(block[0], ("event".to_owned(), "error".to_owned()));
        assert_eq!(block[1].0, "data");
        let envelope: Value = serde_json::from_str(&block[1].1).unwrap();
        assert_eq!(envelope["error"]["kind"], kind, "{envelope}");
        envelope["error"].clone()
    }
}

fn field(name: &str, value: &str) -> Block {
    vec![(name.to_owned(), value.to_owned())]
}

#[tokio::test]
async fn appended_messages_arrive_as_events() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let mut events = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    let first = h.append("demo", json!({"hello": "page"}), &[]).await;
    assert_eq!(events.message().await, (1, first));
    // Tags, and strings with newlines, stay on the event's one data line.
    let second = h
        .append("demo", json!({"text": "two\nlines"}), &["a", "b"])
        .await;
    assert_eq!(events.message().await, (2, second));
    h.stop().await.unwrap();
}

#[tokio::test]
async fn since_seq_tags_max_and_last_event_id() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let mut sent = Vec::new();
    for n in 1..=5 {
        let tags: &[&str] = if n % 2 == 0 { &["even"] } else { &[] };
        sent.push(h.append("demo", json!({ "n": n }), tags).await);
    }
    let mut events = Events::open(&h, "/v0/ui/pools/demo/events?since_seq=3&max=2", None).await;
    assert_eq!(events.message().await, (3, sent[2].clone()));
    assert_eq!(events.message().await, (4, sent[3].clone()));
    assert_eq!(events.next().await, None);

    let mut events = Events::open(&h, "/v0/ui/pools/demo/events?tag=even&max=2", None).await;
    assert_eq!(events.message().await.0, 2);
    assert_eq!(events.message().await.0, 4);
    assert_eq!(events.next().await, None);

    // A reconnecting browser resumes after the last event it got,
    // whatever its URL says.
    let mut events =
        Events::open(&h, "/v0/ui/pools/demo/events?since_seq=1&max=1", Some("4")).await;
    assert_eq!(events.message().await, (5, sent[4].clone()));
    assert_eq!(events.next().await, None);

    // A timeout ends the stream cleanly.
    let mut events = Events::open(
        &h,
        "/v0/ui/pools/demo/events?since_seq=6&timeout_ms=20",
        None,
    )
    .await;
    assert_eq!(events.next().await, None);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_are_one_error_event() {
    let mut limits = Limits::default();
    limits.max_tails = 1;
    let h = Harness::with_limits(limits).await;
    let cases = [
        ("/v0/ui/pools/nope/events", None, "NotFound"),
        ("/v0/ui/pools/demo/events?since_seq=x", None, "Usage"),
        ("/v0/ui/pools/demo/events?timeout_ms=30001", None, "Usage"),
        ("/v0/ui/pools/a%2Fb/events", None, "Usage"),
        ("/v0/ui/pools/demo/events", Some("seven"), "Usage"),
    ];
    for (path, last_event_id, kind) in cases {
        let mut events = Events::open(&h, path, last_event_id).await;
        let err = events.error(kind).await;
        assert!(err["message"].is_string(), "{err}");
        assert_eq!(events.next().await, None, "{path}");
    }
    let err = Events::open(&h, "/v0/ui/pools/nope/events", None)
        .await
        .error("NotFound")
        .await;
    assert!(
        err["path"].as_str().unwrap().ends_with("nope.plex"),
        "{err}"
    );

    // The page's streams and the protocol's tails share max_tails.
    h.create("demo", None).await;
    let mut held = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    let err = Events::open(&h, "/v0/ui/pools/demo/events", None)
        .await
        .error("Busy")
        .await;
    assert_eq!(err["message"], "too many concurrent tail requests");
    h.call(Method::GET, "/v0/pools/demo/tail?timeout_ms=0", None)
        .await
        .error(StatusCode::LOCKED, "Busy");
    h.append("demo", json!({"still": "live"}), &[]).await;
    assert_eq!(held.message().await.0, 1);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let mut limits = Limits::default();
    limits.keep_alive = Duration::from_millis(10);
    let h = Harness::with_limits(limits).await;
    h.create("demo", None).await;
    let mut events = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    assert_eq!(events.next().await, Some(field("", "keep-alive")));
    assert_eq!(events.next().await, Some(field("", "keep-alive")));
    let sent = h.append("demo", json!({"after": "idle"}), &[]).await;
    // Keep-alives may come first; then the message.
    let message = loop {
        let block = events.next().await.unwrap();
        if block != field("", "keep-alive") {
            break block;
        }
    };
    assert_eq!(message[1], ("id".to_owned(), "1".to_owned()));
    assert_eq!(serde_json::from_str::<Value>(&message[2].1).unwrap(), sent);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn a_deleted_pool_ends_its_event_stream_with_an_error_event() {
    // Deleted through the server: its tails end at once.
    let h = Harness::start().await;
    h.create("demo", None).await;
    let mut events = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    let first = h.append("demo", json!({"n": 1}), &[]).await;
    assert_eq!(events.message().await, (1, first));
    let reply = h.call(Method::DELETE, "/v0/pools/demo", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let gone = until_error(&mut events).await;
    assert_eq!(gone["kind"], "NotFound");
    assert_eq!(gone["message"], "pool demo was deleted");
    assert_eq!(events.next().await, None);
    h.stop().await.unwrap();

    // Deleted by another process: noticed at the next keep-alive.
    let mut limits = Limits::default();
    limits.keep_alive = Duration::from_millis(10);
    let h = Harness::with_limits(limits).await;
    h.create("other", None).await;
    let mut events = Events::open(&h, "/v0/ui/pools/other/events", None).await;
    // A keep-alive comes once the stream has opened the pool (deleted
    // before that, the pool is not found rather than deleted).
    assert_eq!(events.next().await, Some(field("", "keep-alive")));
    std::fs::remove_file(h.dir.path().join("other.plex")).unwrap();
    let gone = until_error(&mut events).await;
    assert_eq!(gone["message"], "pool other was deleted");
    assert_eq!(events.next().await, None);
    h.stop().await.unwrap();
}

/// Skips keep-alives up to the next block, which must be an error event:
/// its error object.
async fn until_error(events: &mut Events) -> Value {
    loop {
        let block = events.next().await.expect("an error event");
        if block == field("", "keep-alive") {
            continue;
        }
        assert_eq!(block[0], ("event".to_owned(), "error".to_owned()));
        let envelope: Value = serde_json::from_str(&block[1].1).unwrap();
        return envelope["error"].clone();
    }
}

#[tokio::test]
async fn shutdown_ends_event_streams() {
    let mut h = Harness::start().await;
    h.create("demo", None).await;
    h.append("demo", json!({"n": 1}), &[]).await;
    let mut events = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    assert_eq!(events.message().await.0, 1);
    h.begin_stop();
    assert_eq!(events.next().await, None);
    h.join().await.unwrap();
}

#[tokio::test]
async fn a_disconnect_frees_the_streams_slot() {
    let mut limits = Limits::default();
    limits.max_tails = 1;
    let h = Harness::with_limits(limits).await;
    h.create("demo", None).await;
    let events = Events::open(&h, "/v0/ui/pools/demo/events", None).await;
    Events::open(&h, "/v0/ui/pools/demo/events", None)
        .await
        .error("Busy")
        .await;
    // The browser goes away while the stream waits for an append that
    // never comes: the server notices the closed connection.
    drop(events);
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
