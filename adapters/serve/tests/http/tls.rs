//! The https:// listener: TLS, and an access token on every request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use plex_runtime::tls::ClientTls;
use plex_runtime::Endpoint;
use plex_serve::tokens::TokenStore;
use plex_serve::{Config, ServeError, Server, ServerTls};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A GET over a new TLS connection that trusts `tls`'s certificate only;
/// the status and the error kind, if any.
async fn get(
    addr: SocketAddr,
    tls: &ServerTls,
    path: &str,
    bearer: Option<&str>,
) -> (StatusCode, Option<String>, Option<String>) {
    let endpoint: Endpoint = format!("tls://{addr}").parse().unwrap();
    let (config, name) = ClientTls::pinned(tls.fingerprint())
        .rustls_config(&endpoint)
        .unwrap();
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", addr.to_string());
    if let Some(secret) = bearer {
        req = req.header("authorization", format!("Bearer {secret}"));
    }
    let response = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let kind = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["kind"].as_str().map(str::to_owned));
    (status, kind, challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_a_live_token_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let tls = ServerTls::self_signed(&["127.0.0.1"]).unwrap();
    // Listening on every interface is allowed with TLS.
    let config = Config::new(dir.path())
        .addr("0.0.0.0:0".parse().unwrap())
        .tls(tls.clone());
    let server = Server::bind(config).await.unwrap();
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let tokens = TokenStore::new(dir.path());
    let (_, secret) = tokens.create("ci").unwrap();

    // No token, a wrong one, a malformed header: 401 Permission, with a
    // Bearer challenge.
    for bearer in [None, Some("plxt_0000"), Some("")] {
        let (status, kind, challenge) = get(addr, &tls, "/v0/pools", bearer).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_eq!(kind.as_deref(), Some("Permission"));
        assert_eq!(challenge.as_deref(), Some("Bearer"));
    }
    // The health check needs none.
    assert_eq!(get(addr, &tls, "/healthz", None).await.0, StatusCode::OK);
    // A live token passes, whatever Host says (no loopback guard here).
    let (status, kind, _) = get(addr, &tls, "/v0/pools", Some(&secret)).await;
    assert_eq!((status, kind), (StatusCode::OK, None));
    // Revoked by another handle (the CLI), refused at the next request.
    TokenStore::new(dir.path()).revoke("ci").unwrap();
    let (status, _, _) = get(addr, &tls, "/v0/pools", Some(&secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path()).addr("0.0.0.0:0".parse().unwrap());
    let err = Server::bind(config).await.unwrap_err();
    assert!(matches!(err, ServeError::OffLoopback { .. }), "{err}");
    assert!(err.to_string().contains("https"), "{err}");
}
