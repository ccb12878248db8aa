//! The authentication exchange of `plex_runtime::auth` over loopback TCP:
//! the verdicts a client gets from each kind of server.

use std::time::Duration;

use plex_runtime::auth::{
    admit_all, authenticate, authenticate_within, gate, AuthError, Refusal, AUTH_PROTOCOL,
};
use plex_runtime::{Config, Error, OpenOptions, Session};

/// A listener whose every session is handed to `serve`.
async fn server<F, Fut>(serve: F) -> String
where
    F: Fn(Session) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    server_with(Config::default(), serve).await
}

/// [`server`], its sessions configured with `config`.
async fn server_with<F, Fut>(config: Config, serve: F) -> String
where
    F: Fn(Session) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = plex_tokio::listen("tcp://127.0.0.1:0", config)
        .await
        .unwrap();
    let url = listener.local_endpoint().to_string();
    tokio::spawn(async move {
        while let Ok((session, _)) = listener.accept().await {
            tokio::spawn(serve(session));
        }
    });
    url
}

async fn dial(url: &str) -> Session {
    plex_tokio::connect(url, Config::default()).await.unwrap()
}

/// A server that checks for the token `good`, then keeps the session.
async fn checking(session: Session) {
    let Ok(request) = gate(&session, Duration::from_secs(30)).await else {
        return;
    };
    match request.token() {
        Some("good") => request.admit().unwrap(),
        Some(_) => request.refuse(Refusal::Denied, "not that one").unwrap(),
        None => request
            .refuse(Refusal::Required, "a token, please")
            .unwrap(),
    }
    session.closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_admits_its_token_and_refuses_others_with_their_reason() {
    let url = server(checking).await;
    authenticate(&dial(&url).await, Some("good")).await.unwrap();
    let denied = authenticate(&dial(&url).await, Some("bad")).await;
    assert!(
        matches!(&denied, Err(AuthError::Denied(m)) if m == "not that one"),
        "{denied:?}"
    );
    let required = authenticate(&dial(&url).await, None).await;
    assert!(
        matches!(&required, Err(AuthError::Required(m)) if m == "a token, please"),
        "{required:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_access_control_admit_every_client() {
    // One that admits every exchange, and one that does not know it and
    // refuses its stream.
    let admitting = server(|session| async move { admit_all(&session).await }).await;
    let mut unknown = Config::default();
    unknown.accept_any = false;
    let refusing = server_with(unknown, |session| async move {
        session.closed().await;
    })
    .await;
    for url in [admitting, refusing] {
        for token in [None, Some("anything")] {
            authenticate(&dial(&url).await, token).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_verdict_in_time_is_a_timeout_on_either_side() {
    // A client facing a server that never answers.
    let silent = server(|session| async move {
        session.closed().await;
    })
    .await;
    let session = dial(&silent).await;
    let late = authenticate_within(&session, Some("t"), Duration::from_millis(50)).await;
    assert!(matches!(late, Err(AuthError::TimedOut(_))), "{late:?}");

    // A gate facing a client that never authenticates.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let url = server(move |session| {
        let tx = tx.lock().unwrap().take();
        async move {
            let outcome = gate(&session, Duration::from_millis(50)).await;
            if let Some(tx) = tx {
                let _ = tx.send(outcome.map(|_| ()));
            }
        }
    })
    .await;
    let _idle = dial(&url).await;
    let outcome = rx.await.unwrap();
    assert!(
        matches!(outcome, Err(AuthError::TimedOut(_))),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_hello_is_refused_and_reported() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let url = server(move |session| {
        let tx = tx.lock().unwrap().take();
        async move {
            let outcome = gate(&session, Duration::from_secs(30)).await;
            if let Some(tx) = tx {
                let _ = tx.send(outcome.map(|_| ()));
            }
            session.closed().await;
        }
    })
    .await;
    let session = dial(&url).await;
    let stream = session
        .open_stream(OpenOptions::new(AUTH_PROTOCOL, "").handshake("\x09junk"))
        .await
        .unwrap();
    let verdict = stream.remote_open().await.unwrap();
    assert!(
        matches!(
            plex_runtime::auth::Verdict::decode(&verdict),
            Ok(plex_runtime::auth::Verdict::Refused {
                refusal: Refusal::Denied,
                ..
            })
        ),
        "{verdict:?}"
    );
    let outcome = rx.await.unwrap();
    assert!(matches!(outcome, Err(AuthError::Wire(_))), "{outcome:?}");
    // The refusal reads as a runtime error too.
    let as_error = Error::from(AuthError::Denied("x".into()));
    assert_eq!(
        std::io::Error::from(as_error).kind(),
        std::io::ErrorKind::PermissionDenied
    );
}
