//! Pool lifecycle, append and read by seq: success and error cases.

use hyper::{Method, StatusCode};
use plex_store::{Pool, Seq};
use serde_json::json;

use crate::common::Harness;

#[tokio::test]
async fn health_unknown_routes_and_methods() {
    let h = Harness::start().await;
    let reply = h.call(Method::GET, "/healthz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version(), Some("0"));
    assert_eq!(reply.json(), json!({"ok": true}));
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json"
    );

    h.call(Method::GET, "/v0/nothing", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    let reply = h.call(Method::PUT, "/v0/pools", None).await;
    reply.error(StatusCode::METHOD_NOT_ALLOWED, "Usage");
    assert_eq!(reply.headers.get("allow").unwrap(), "GET, POST");
    h.call(Method::POST, "/v0/pools/demo/append_lite3", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn create_open_info_list_delete() {
    let h = Harness::start().await;
    let reply = h.create("demo", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.version(), Some("0"));
    let info = reply.json()["pool"].clone();
    assert_eq!(info["name"], "demo");
    let dir = h.dir.path().canonicalize().unwrap();
    assert_eq!(
        info["path"],
        dir.join("demo.plasmite").to_str().unwrap(),
        "Plasmite's CLI names pools by this basename"
    );
    assert_eq!(info["file"], dir.join("demo.plex").to_str().unwrap());
    assert_eq!(info["file_size"], 1 << 20);
    assert_eq!(info["bounds"], json!({}));
    assert_eq!(info["metrics"]["message_count"], 0);
    let (ring_offset, ring_size) = (
        info["ring_offset"].as_u64().unwrap(),
        info["ring_size"].as_u64().unwrap(),
    );
    assert_eq!(ring_offset + ring_size, 1 << 20);
    assert_eq!(info["index_offset"], 4096);
    assert_eq!(info["index_size_bytes"], ring_offset - 4096);

    let err = h
        .create("demo", None)
        .await
        .error(StatusCode::CONFLICT, "AlreadyExists");
    assert!(
        err["path"].as_str().unwrap().ends_with("/demo.plex"),
        "{err}"
    );
    assert_eq!(h.create("big", Some(3 << 20)).await.status, StatusCode::OK);
    h.create("odd", Some(5000))
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");

    let open = |pool: &str| json!({ "pool": pool });
    let reply = h
        .call(Method::POST, "/v0/pools/open", Some(open("demo")))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["pool"]["name"], "demo");
    h.call(Method::POST, "/v0/pools/open", Some(open("nope")))
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");

    let reply = h.call(Method::GET, "/v0/pools/big/info", None).await;
    assert_eq!(reply.json()["pool"]["file_size"], 3 << 20);
    h.call(Method::GET, "/v0/pools/nope/info", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");

    // Other files of the directory are not pools.
    std::fs::write(h.dir.path().join("notes.txt"), "x").unwrap();
    let reply = h.call(Method::GET, "/v0/pools", None).await;
    let names: Vec<_> = reply.json()["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["big", "demo"]);

    let reply = h.call(Method::DELETE, "/v0/pools/demo", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"ok": true}));
    assert!(!h.dir.path().join("demo.plex").exists());
    h.call(Method::DELETE, "/v0/pools/demo", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    h.call(Method::GET, "/v0/pools/demo/info", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    // A pool created again under the name is a new file, opened anew.
    assert_eq!(h.create("demo", None).await.status, StatusCode::OK);
    let reply = h.call(Method::GET, "/v0/pools/demo/info", None).await;
    assert_eq!(reply.json()["pool"]["metrics"]["message_count"], 0);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn a_damaged_pool_file_is_corrupt_and_left_out_of_listings() {
    let h = Harness::start().await;
    h.create("good", None).await;
    std::fs::write(h.dir.path().join("bad.plex"), vec![7u8; 8192]).unwrap();
    let err = h
        .call(Method::GET, "/v0/pools/bad/info", None)
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR, "Corrupt");
    assert!(
        err["path"].as_str().unwrap().ends_with("/bad.plex"),
        "{err}"
    );
    h.call(Method::GET, "/v0/pools/bad/messages/1", None)
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR, "Corrupt");
    let reply = h.call(Method::GET, "/v0/pools", None).await;
    let pools = reply.json()["pools"].clone();
    assert_eq!(pools.as_array().unwrap().len(), 1, "{pools}");
    assert_eq!(pools[0]["name"], "good");
    // Delete refuses files that are not pools.
    h.call(Method::DELETE, "/v0/pools/bad", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn names_are_names_not_paths() {
    let h = Harness::start().await;
    for path in [
        "/v0/pools/a%2Fb/info",
        "/v0/pools/..%2Fx/info",
        "/v0/pools/a%5Cb/info",
    ] {
        let err = h
            .call(Method::GET, path, None)
            .await
            .error(StatusCode::BAD_REQUEST, "Usage");
        assert_eq!(err["message"], "pool name must not contain path separators");
    }
    for name in ["a/b", "", "..", "."] {
        h.create(name, None)
            .await
            .error(StatusCode::BAD_REQUEST, "Usage");
    }
    h.call(Method::GET, "/v0/pools/%2E%2E/info", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.stop().await.unwrap();
}

#[tokio::test]
async fn append_and_get() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let reply = h
        .call_raw(
            Method::POST,
            "/v0/pools/demo/append",
            r#"{"data": {"n": 1, "big": 123456789012345678901234567890}, "tags": ["a", "b"]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let msg = reply.json()["message"].clone();
    assert_eq!(msg["seq"], 1);
    assert_eq!(msg["meta"], json!({"tags": ["a", "b"]}));
    let time = msg["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 30, "{time}");

    let reply = h.call(Method::GET, "/v0/pools/demo/messages/1", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["message"], msg);
    // Numbers are stored and served byte for byte.
    assert!(
        reply
            .text()
            .contains("\"big\":123456789012345678901234567890"),
        "{}",
        reply.text()
    );

    let err = h
        .call(Method::GET, "/v0/pools/demo/messages/2", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(err["message"], "message not found");
    assert_eq!(err["seq"], 2);
    h.call(Method::GET, "/v0/pools/demo/messages/x", None)
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.call(Method::GET, "/v0/pools/nope/messages/1", None)
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");

    let append = |body| h.call(Method::POST, "/v0/pools/demo/append", Some(body));
    let err = append(json!({"data": [1, 2]}))
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    assert_eq!(err["message"], "data must be object");
    append(json!({"tags": []}))
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    h.call(
        Method::POST,
        "/v0/pools/nope/append",
        Some(json!({"data": {}})),
    )
    .await
    .error(StatusCode::NOT_FOUND, "NotFound");

    // durability=flush is acknowledged once synced.
    let reply = append(json!({"data": {"n": 2}, "durability": "flush"})).await;
    assert_eq!(reply.json()["message"]["seq"], 2);
    assert_eq!(reply.json()["message"]["meta"]["tags"], json!([]));
    let pool = Pool::open_read_only(h.dir.path().join("demo.plex")).unwrap();
    assert!(pool.info().synced >= Seq(2));
    assert_eq!(pool.get(Seq(2)).unwrap().data, br#"{"n":2}"#);

    // A message fed by another tool prints as the CLI prints it.
    let writer = Pool::open(h.dir.path().join("demo.plex")).unwrap();
    writer.append(&[], b"plain text").unwrap();
    let reply = h.call(Method::GET, "/v0/pools/demo/messages/3", None).await;
    let msg = &reply.json()["message"];
    assert_eq!(msg["data"], "plain text");
    assert_eq!(msg["meta"]["encoding"], "text");

    let info = h
        .call(Method::GET, "/v0/pools/demo/info", None)
        .await
        .json();
    let info = &info["pool"];
    assert_eq!(info["bounds"], json!({"oldest": 1, "newest": 3}));
    assert_eq!(info["metrics"]["message_count"], 3);
    assert_eq!(info["metrics"]["seq_span"], 3);
    assert!(
        info["metrics"]["utilization"]["used_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(info["metrics"]["age"]["newest_time"].is_string());
    h.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_must_be_json() {
    let h = Harness::start().await;
    h.create("demo", None).await;
    let mut client = h.connect().await;
    let mut req = client.request(
        Method::POST,
        "/v0/pools/demo/append",
        Some(json!({"data": {}})),
    );
    req.headers_mut().remove("content-type");
    client
        .fetch(req)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Usage");
    let err = h
        .call_raw(Method::POST, "/v0/pools", "{\"pool\":")
        .await
        .error(StatusCode::BAD_REQUEST, "Usage");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON body"));
    h.stop().await.unwrap();
}
