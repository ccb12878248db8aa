//! `tls://` listeners and access tokens on `plex/1`: the policy of a
//! listener off loopback, exercised on loopback with `require_token`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use plex_bus::{BusClient, Event};
use plex_peer::{connect_store_port, Peer, StorePort};
use plex_runtime::auth::AuthError;
use plex_runtime::tls::ClientTls;
use plex_runtime::{CloseReason, TlsError};
use plex_serve::remote::{RemoteError, RemotePools, KV_PORT};
use plex_serve::tokens::TokenStore;
use plex_serve::{Config, Limits, ServeError, Server, ServerTls};
use plex_tokio::ConnectOptions;
use tokio::sync::oneshot;

/// A certificate for 127.0.0.1 in PEM files: `cert.pem` (also what a
/// client trusts as its CA) and `key.pem`, in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A server on `tls://127.0.0.1:0` that requires tokens, as off loopback.
struct Secured {
    url: String,
    ca: ClientTls,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Secured {
    async fn start(dir: &Path, limits: Limits) -> Secured {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = certificate(certs.path());
        let config = Config::new(dir)
            .addr("127.0.0.1:0".parse().unwrap())
            .limits(limits)
            .listen(vec!["tls://127.0.0.1:0".into()])
            .listen_tls(ServerTls::from_pem_files(&cert, &key).unwrap())
            .require_token(true);
        let server = Server::bind(config).await.unwrap();
        let url = server.plex_urls().remove(0);
        assert!(url.starts_with("tls://"), "{url}");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Secured {
            url,
            ca: ClientTls::ca_file(&cert).unwrap(),
            stop: Some(stop),
            task,
        }
    }

    fn options(&self, token: Option<&str>) -> ConnectOptions {
        let options = ConnectOptions::default().tls(self.ca.clone());
        match token {
            Some(token) => options.token(token),
            None => options,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn refusal(e: RemoteError) -> AuthError {
    match e {
        RemoteError::Auth { source, .. } => source,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Waits for the session to close; a guard against a hang, not a timing
/// assertion.
async fn closed(session: &plex_runtime::Session) -> CloseReason {
    tokio::time::timeout(Duration::from_secs(30), session.closed())
        .await
        .expect("the server closes the session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_admits_pools_the_bus_and_store_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = TokenStore::new(dir.path()).create("ci").unwrap();
    let server = Secured::start(dir.path(), Limits::default()).await;
    let options = server.options(Some(&secret));

    let pools = RemotePools::connect_with(&server.url, &options)
        .await
        .unwrap();
    pools.create("p", 64 << 10, None).await.unwrap();
    let mut appender = pools
        .appender("p", plex_proto::pools::Durability::Fast)
        .await
        .unwrap();
    appender
        .send(&[(vec![], Bytes::from_static(b"{\"a\":1}"))])
        .await
        .unwrap();
    assert_eq!(appender.receipt().await.unwrap().first, 1);
    appender.finish().await.unwrap();
    assert_eq!(&pools.get("p", 1).await.unwrap().data[..], b"{\"a\":1}");
    let names: Vec<_> = pools
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.expect("a readable pool").name)
        .collect();
    assert_eq!(names, ["p"]);

    // The bus, on sessions of their own.
    let worker = BusClient::new(
        plex_tokio::connect_with(&server.url, &options)
            .await
            .unwrap(),
    );
    let caller = BusClient::new(
        plex_tokio::connect_with(&server.url, &options)
            .await
            .unwrap(),
    );
    let mut news = worker.subscribe("news.*").await.unwrap();
    caller
        .publish("news.plex", Bytes::from("secured"))
        .await
        .unwrap();
    assert_eq!(
        news.next().await.transpose().unwrap(),
        Some(Event::Message {
            channel: "news.plex".into(),
            payload: Bytes::from("secured")
        })
    );

    // The store ports, on the pools' session.
    let peer = Peer::new(pools.session().clone());
    let kv = connect_store_port(&peer, KV_PORT, "rpc");
    kv.put("k".into(), "v".into(), Bytes::new()).await.unwrap();
    assert_eq!(
        kv.get("k".into(), Bytes::new()).await.unwrap(),
        Some("v".into())
    );
    drop((pools, worker, caller, news, kv, peer));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_revoked_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenStore::new(dir.path());
    let (_, secret) = tokens.create("laptop").unwrap();
    let server = Secured::start(dir.path(), Limits::default()).await;

    let missing = RemotePools::connect_with(&server.url, &server.options(None))
        .await
        .unwrap_err();
    assert!(matches!(refusal(missing), AuthError::Required(_)));
    let wrong = RemotePools::connect_with(&server.url, &server.options(Some("plxt_nope")))
        .await
        .unwrap_err();
    let wrong = refusal(wrong);
    assert!(matches!(wrong, AuthError::Denied(_)), "{wrong}");
    assert!(wrong.to_string().contains("invalid or revoked"), "{wrong}");
    // The bus client gets the same typed refusal.
    let bus = plex_tokio::connect_with(&server.url, &server.options(None))
        .await
        .unwrap_err();
    assert!(
        matches!(bus, plex_runtime::Error::Auth(AuthError::Required(_))),
        "{bus}"
    );

    // A session admitted, then its token revoked: new sessions are
    // refused, and the live one is closed.
    let live = RemotePools::connect_with(&server.url, &server.options(Some(&secret)))
        .await
        .unwrap();
    assert_eq!(live.list().await.unwrap(), []);
    tokens.revoke("laptop").unwrap();
    let revoked = RemotePools::connect_with(&server.url, &server.options(Some(&secret)))
        .await
        .unwrap_err();
    assert!(matches!(refusal(revoked), AuthError::Denied(_)));
    closed(live.session()).await;
    assert!(live.list().await.unwrap_err().is_connection());
    drop(live);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, secret) = TokenStore::new(dir.path()).create("ci").unwrap();
    let server = Secured::start(dir.path(), Limits::default()).await;
    let other = tempfile::tempdir().unwrap();
    let (other_ca, _) = certificate(other.path());
    let options = ConnectOptions::default()
        .tls(ClientTls::ca_file(&other_ca).unwrap())
        .token(secret);
    let e = plex_tokio::connect_with(&server.url, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            plex_runtime::Error::Tls(TlsError::UnknownIssuer | TlsError::BadCertificate(_))
        ),
        "{e}"
    );
    let e = RemotePools::connect_with(&server.url, &options)
        .await
        .unwrap_err();
    assert!(matches!(e, RemoteError::Connect { .. }), "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_authenticates_is_served_nothing_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = Limits::default();
    limits.auth_timeout = Duration::from_millis(200);
    let server = Secured::start(dir.path(), limits).await;
    let options = server.options(None);
    // Dialled, TLS and all, but never authenticated.
    let session = plex_runtime::connect(
        &plex_tokio::TokioTransport::with_tls(
            plex_runtime::tls::TlsConfig::default().with_client(options.tls.clone()),
        ),
        plex_tokio::TokioRuntime::current(),
        &server.url,
        plex_runtime::Config::default(),
    )
    .await
    .unwrap();
    let pools = RemotePools::new(session.clone());
    let bus = BusClient::new(session.clone());
    let peer = Peer::new(session.clone());
    let kv = connect_store_port(&peer, KV_PORT, "rpc");
    let (listed, requested, got) = tokio::join!(
        pools.list(),
        bus.request("anyone", Bytes::from("hi")),
        kv.get("k".into(), Bytes::new()),
    );
    assert!(listed.unwrap_err().is_connection());
    assert!(requested.is_err());
    assert!(got.is_err());
    assert!(matches!(
        closed(&session).await,
        CloseReason::Remote { .. } | CloseReason::TransportClosed
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listeners_stay_on_loopback_and_tls_needs_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let bind = |listen: &str| {
        Server::bind(
            Config::new(dir.path())
                .addr("127.0.0.1:0".parse().unwrap())
                .listen(vec![listen.to_owned()]),
        )
    };
    for off in ["tcp://0.0.0.0:0", "ws://0.0.0.0:0/plex"] {
        let e = bind(off).await.unwrap_err();
        assert!(matches!(e, ServeError::PlexOffLoopback { .. }), "{e}");
        assert!(e.to_string().contains("tls://"), "{e}");
    }
    assert!(matches!(
        bind("tls://127.0.0.1:0").await.unwrap_err(),
        ServeError::PlexNoCertificate { .. }
    ));

    // On loopback without `require_token`, a token is optional: the
    // exchange admits a client with none, and one with any.
    let server = Server::bind(
        Config::new(dir.path())
            .addr("127.0.0.1:0".parse().unwrap())
            .listen(vec!["tcp://127.0.0.1:0".into()]),
    )
    .await
    .unwrap();
    let url = server.plex_urls().remove(0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    for options in [
        ConnectOptions::default(),
        ConnectOptions::default().token("plxt_anything"),
    ] {
        let pools = RemotePools::connect_with(&url, &options).await.unwrap();
        assert_eq!(pools.list().await.unwrap(), []);
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
