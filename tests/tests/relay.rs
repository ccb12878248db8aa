//! `relay://` through a real Syncthing relay (`strelaysrv` on loopback, see
//! `plex_tests::relay`): echo on every runtime and across runtimes, 1,000
//! concurrent streams over one relayed session, the typed failures (device
//! not joined, wrong relay, wrong device, expired invitation), the relay
//! killed mid-transfer, sessions idle longer than the relay's network
//! timeout, and identities that persist.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use plex_runtime::relay::{
    self, secure_session, Connector, DeviceId, Identity, RelayConfig, SessionSide,
};
use plex_runtime::{BoxIo, BoxResult, Config, Error, OpenOptions, RelayError, Session, Transport};
use plex_tests::relay::Relay;
use plex_tests::{echo_server, payload, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for something that should happen before calling
/// it a hang.
const HANG: Duration = Duration::from_secs(60);

/// This runtime's transport with these relay settings.
fn transport(rt: Rt, relay: RelayConfig) -> Arc<dyn Transport> {
    match rt {
        Rt::Tokio => Arc::new(plex_tokio::TokioTransport::default().with_relay(relay)),
        Rt::Smol => Arc::new(plex_smol::SmolTransport::default().with_relay(relay)),
        Rt::AsyncStd => Arc::new(plex_async_std::AsyncStdTransport::default().with_relay(relay)),
    }
}

/// A listener on `relay_url` in a thread of its own running `rt`, echoing
/// every stream; returns the URL to dial it at, and a channel that gets
/// the error its accept loop ended with.
fn echo_listener(rt: Rt, relay_url: &str, config: RelayConfig) -> (String, mpsc::Receiver<Error>) {
    let (bound, url) = mpsc::channel();
    let (ended, why) = mpsc::channel();
    let relay_url = relay_url.to_string();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let transport = transport(rt, config);
            let listening =
                plex_runtime::listen(&*transport, rt.runtime(), &relay_url, Config::default())
                    .await;
            let listener = match listening {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = bound.send(Err(e));
                    return;
                }
            };
            let _ = bound.send(Ok(listener.local_endpoint().to_string()));
            let runtime = rt.runtime();
            let error = loop {
                match listener.accept().await {
                    Ok((session, _peer)) => {
                        runtime.spawn(Box::pin(echo_server(session, runtime.clone())));
                    }
                    Err(e) => break e,
                }
            };
            let _ = ended.send(error);
        })
    });
    let url = url
        .recv_timeout(HANG)
        .expect("the listener reports")
        .expect("listen on the relay");
    (url, why)
}

/// Sends `data` on a new stream and reads the echo back.
async fn echo(session: &Session, data: &[u8]) -> Vec<u8> {
    let mut stream = session.open_stream(OpenOptions::default()).await.unwrap();
    let (mut reader, mut writer) = smol::io::split(&mut stream);
    let sending = async {
        writer.write_all(data).await.unwrap();
        writer.close().await.unwrap();
    };
    let mut back = Vec::new();
    let receiving = async { reader.read_to_end(&mut back).await.unwrap() };
    smol::future::zip(sending, receiving).await;
    back
}

/// A relay config with a fresh identity.
fn device() -> RelayConfig {
    RelayConfig::default().with_identity(Identity::generate().unwrap())
}

#[test]
fn echo_through_the_relay_on_tokio() {
    let relay = Relay::start();
    let listener = device();
    let id = listener.device_id().unwrap();
    let (url, _) = echo_listener(Rt::Tokio, &relay.pinned_url(), listener);
    assert!(url.contains(&format!("?id={id}")), "{url}");
    Rt::Tokio.block_on(async {
        let session = plex_tokio::connect(&url, Config::default()).await.unwrap();
        let data = payload(1 << 20);
        assert_eq!(echo(&session, &data).await, data);
    });
}
