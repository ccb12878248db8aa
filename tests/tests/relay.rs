//! `relay://` through a real Syncthing relay (`strelaysrv` on loopback, see
//! `plex_tests::relay`): echo on tokio, the cross-runtime matrix (1,000
//! concurrent streams of 0 B to 5 MiB over one relayed session, every pair
//! of runtimes), the typed failures (device
//! not joined, wrong relay, wrong device, expired invitation), the relay
//! killed mid-transfer, sessions idle longer than the relay's network
//! timeout, a close the relay does not pass on, 100 sessions in a row,
//! a rate-limited relay, the Manager, and identities that persist.

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
    echo_listener_with(rt, relay_url, config, Config::default())
}

/// [`echo_listener`] whose sessions run with `session`.
fn echo_listener_with(
    rt: Rt,
    relay_url: &str,
    config: RelayConfig,
    session: Config,
) -> (String, mpsc::Receiver<Error>) {
    let (bound, url) = mpsc::channel();
    let (ended, why) = mpsc::channel();
    let relay_url = relay_url.to_string();
    std::thread::spawn(move || {
        rt.block_on(async move {
            let transport = transport(rt, config);
            let listening =
                plex_runtime::listen(&*transport, rt.runtime(), &relay_url, session).await;
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

/// Sessions that take 1,000 concurrent streams each way.
fn wide() -> Config {
    let mut config = Config::default();
    config.max_concurrent_streams = 2000;
    config.max_pending_accepts = 2000;
    config
}

/// The payload sizes of the matrix: each once, then the small ones over
/// and over.
const SIZES: [usize; 6] = [0, 1, 1024, 16 * 1024, 1 << 20, 5 << 20];

/// 1,000 concurrent echoes of [`SIZES`] over one session, every byte
/// checked.
async fn thousand_echoes(session: &Session) {
    let echoes = (0..1000).map(|i| async move {
        let len = if i < SIZES.len() {
            SIZES[i]
        } else {
            SIZES[i % 4]
        };
        let data = payload(len);
        assert!(
            echo(session, &data).await == data,
            "stream {i} of {len} bytes"
        );
    });
    futures_util::future::join_all(echoes).await;
}

#[test]
fn the_cross_runtime_matrix_through_the_relay() {
    // Every dialer runtime to every listener runtime: 1,000 concurrent
    // streams of 0 B to 5 MiB over one relayed session each.
    let relay = Relay::start();
    let listeners: Vec<(Rt, String)> = Rt::ALL
        .iter()
        .map(|&rt| (rt, echo_listener_with(rt, &relay.url(), device(), wide()).0))
        .collect();
    for dialer in Rt::ALL {
        dialer.block_on(async {
            let transport = transport(dialer, RelayConfig::default());
            for (listener, url) in &listeners {
                let session = plex_runtime::connect(&*transport, dialer.runtime(), url, wide())
                    .await
                    .unwrap_or_else(|e| panic!("{dialer:?} -> {listener:?}: {e}"));
                dialer
                    .within(HANG, thousand_echoes(&session))
                    .await
                    .unwrap_or_else(|| panic!("{dialer:?} -> {listener:?} hangs"));
            }
        });
    }
}

#[test]
fn dialling_a_device_that_is_not_joined_is_not_found() {
    let relay = Relay::start();
    let absent = DeviceId([7; 32]);
    let url = format!("{}/?id={absent}", relay.url());
    Rt::Smol.block_on(async {
        let err = plex_smol::connect(&url, Config::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Relay(RelayError::NotFound(id)) if id == absent),
            "{err}"
        );
    });
}

#[test]
fn a_relay_that_is_not_the_pinned_one_is_refused() {
    let relay = Relay::start();
    let wrong = DeviceId([9; 32]);
    let pinned_wrong = format!("{}/?relay={wrong}", relay.url());
    Rt::AsyncStd.block_on(async {
        let transport = transport(Rt::AsyncStd, device());
        let runtime = Rt::AsyncStd.runtime();
        let err = plex_runtime::listen(&*transport, runtime, &pinned_wrong, Config::default())
            .await
            .unwrap_err();
        let expected = RelayError::WrongRelay {
            expected: wrong,
            found: relay.id(),
        };
        assert!(matches!(&err, Error::Relay(e) if *e == expected), "{err}");
    });
    // Dialling checks the pin too, before asking for any device.
    let (url, _) = echo_listener(Rt::Tokio, &relay.pinned_url(), device());
    let dial_wrong = format!("{url}&relay={wrong}").replace(&format!("relay={}&", relay.id()), "");
    Rt::Tokio.block_on(async {
        let err = plex_tokio::connect(&dial_wrong, Config::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Relay(RelayError::WrongRelay { .. })),
            "{err}"
        );
    });
}

/// Plain TCP on smol, as the adapters give the relay code.
fn smol_tcp() -> Connector {
    Arc::new(|address: String| -> BoxResult<'static, BoxIo> {
        Box::pin(
            async move { Ok(Box::new(smol::net::TcpStream::connect(address).await?) as BoxIo) },
        )
    })
}

/// The two ends of a loopback TCP connection.
async fn tcp_pair() -> (BoxIo, BoxIo) {
    let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, dialled) =
        smol::future::zip(listener.accept(), smol::net::TcpStream::connect(addr)).await;
    (
        Box::new(accepted.unwrap().0) as BoxIo,
        Box::new(dialled.unwrap()) as BoxIo,
    )
}

#[test]
fn a_peer_that_is_not_the_expected_device_fails_the_inner_tls() {
    let (a, b, c) = (
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
    );
    let timeout = Duration::from_secs(10);
    Rt::Smol.block_on(async {
        let runtime = Rt::Smol.runtime();
        // The dialer expects c, but a answers.
        let (server_io, client_io) = tcp_pair().await;
        let server = secure_session(
            &*runtime,
            server_io,
            &a,
            b.device_id(),
            SessionSide::Server,
            timeout,
        );
        let client = secure_session(
            &*runtime,
            client_io,
            &b,
            c.device_id(),
            SessionSide::Client,
            timeout,
        );
        let (_, client) = smol::future::zip(server, client).await;
        let expected = RelayError::WrongDevice {
            expected: c.device_id(),
            found: a.device_id(),
        };
        assert!(
            matches!(&client, Err(Error::Relay(e)) if *e == expected),
            "{:?}",
            client.err()
        );

        // The listener expects the invitation's From, c, but b dials.
        let (server_io, client_io) = tcp_pair().await;
        let server = secure_session(
            &*runtime,
            server_io,
            &a,
            c.device_id(),
            SessionSide::Server,
            timeout,
        );
        let client = secure_session(
            &*runtime,
            client_io,
            &b,
            a.device_id(),
            SessionSide::Client,
            timeout,
        );
        let (server, _) = smol::future::zip(server, client).await;
        let expected = RelayError::WrongDevice {
            expected: c.device_id(),
            found: b.device_id(),
        };
        assert!(
            matches!(&server, Err(Error::Relay(e)) if *e == expected),
            "{:?}",
            server.err()
        );

        // The right ids on both sides.
        let (server_io, client_io) = tcp_pair().await;
        let server = secure_session(
            &*runtime,
            server_io,
            &a,
            b.device_id(),
            SessionSide::Server,
            timeout,
        );
        let client = secure_session(
            &*runtime,
            client_io,
            &b,
            a.device_id(),
            SessionSide::Client,
            timeout,
        );
        let (server, client) = smol::future::zip(server, client).await;
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        let mut got = [0; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    });
}

#[test]
fn an_invitation_joined_after_the_relay_s_message_timeout_has_expired() {
    let relay = Relay::with_args(&["-message-timeout=1s"]);
    let listener = device();
    let target = listener.device_id().unwrap();
    let _listening = echo_listener(Rt::Smol, &relay.url(), listener);
    Rt::Smol.block_on(async {
        let runtime = Rt::Smol.runtime();
        let endpoint = relay.url().parse().unwrap();
        let connect = smol_tcp();
        let config = device();
        let invitation = relay::request_session(&*runtime, &connect, &config, &endpoint, target)
            .await
            .unwrap();
        assert_eq!(invitation.from.device_id(), Some(target));
        assert!(!invitation.server_socket, "the dialer is the TLS client");
        smol::Timer::after(Duration::from_secs(2)).await;
        let joined = relay::join_session(&*runtime, &connect, &endpoint, &invitation, HANG).await;
        assert!(
            matches!(joined, Err(Error::Relay(RelayError::InvitationExpired))),
            "{:?}",
            joined.err()
        );
    });
}

#[test]
fn killing_the_relay_mid_transfer_fails_both_ends_without_a_hang() {
    let mut relay = Relay::start();
    // The listener tries to join again for half a second, then gives up.
    let listener = device().with_rejoin(Duration::from_millis(500));
    let (url, listener_ended) = echo_listener(Rt::Tokio, &relay.url(), listener);
    Rt::Smol.block_on(async {
        let mut config = Config::default();
        config.ping_interval = Some(Duration::from_secs(1));
        config.idle_timeout = Some(Duration::from_secs(3));
        let session = plex_smol::connect(&url, config).await.unwrap();
        let mut stream = session.open_stream(OpenOptions::default()).await.unwrap();
        let chunk = payload(64 * 1024);
        // Echo a few chunks, then kill the relay while writing on.
        for _ in 0..4 {
            stream.write_all(&chunk).await.unwrap();
            let mut back = vec![0; chunk.len()];
            stream.read_exact(&mut back).await.unwrap();
            assert_eq!(back, chunk);
        }
        relay.kill();
        let transfer = async {
            loop {
                stream.write_all(&chunk).await?;
                let mut back = vec![0; chunk.len()];
                stream.read_exact(&mut back).await?;
            }
        };
        let ended: Option<std::io::Result<()>> = Rt::Smol.within(HANG, transfer).await;
        assert!(
            matches!(ended, Some(Err(_))),
            "the transfer fails: {ended:?}"
        );
    });
    let why = listener_ended
        .recv_timeout(HANG)
        .expect("the listener fails");
    assert!(
        matches!(why, Error::Relay(RelayError::ControlLost(_))),
        "{why}"
    );
}

#[test]
fn a_listener_rejoins_a_restarted_relay() {
    let mut relay = Relay::start();
    let (url, _) = echo_listener(Rt::Smol, &relay.pinned_url(), device());
    Rt::Tokio.block_on(async {
        let session = plex_tokio::connect(&url, Config::default()).await.unwrap();
        assert_eq!(echo(&session, b"before").await, b"before");
    });
    relay.restart();
    // The listener joins the new relay process under the same device id;
    // until it has, the relay does not know it.
    Rt::Tokio.block_on(async {
        let session = Rt::Tokio
            .within(HANG, async {
                loop {
                    match plex_tokio::connect(&url, Config::default()).await {
                        Ok(session) => break session,
                        Err(Error::Relay(RelayError::NotFound(_))) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .await
            .expect("the listener rejoins");
        assert_eq!(echo(&session, b"after").await, b"after");
    });
}

#[test]
fn sessions_and_listeners_outlive_the_relay_s_network_timeout_when_idle() {
    // The relay drops connections silent for 2 s and pings every second.
    let relay = Relay::with_args(&["-network-timeout=2s", "-ping-interval=1s"]);
    let listener = device().with_keepalive(Duration::from_millis(500));
    let (url, _) = echo_listener(Rt::Tokio, &relay.url(), listener);
    Rt::Tokio.block_on(async {
        let mut config = Config::default();
        config.ping_interval = Some(Duration::from_millis(500));
        let session = plex_tokio::connect(&url, config).await.unwrap();
        assert_eq!(echo(&session, b"before").await, b"before");
        // Idle three network timeouts: keep-alives carry both directions.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(echo(&session, b"after").await, b"after");
        // The listener is still joined: a new session reaches it.
        let again = plex_tokio::connect(&url, Config::default()).await.unwrap();
        assert_eq!(echo(&again, b"again").await, b"again");
    });
}

#[test]
fn an_identity_kept_in_a_directory_keeps_its_device_id() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("identity");
    let first = Identity::load_or_generate(&keys).unwrap();
    let again = Identity::load_or_generate(&keys).unwrap();
    let loaded = Identity::load(&keys).unwrap();
    assert_eq!(first.device_id(), again.device_id());
    assert_eq!(first.device_id(), loaded.device_id());
    assert_ne!(first.device_id(), Identity::generate().unwrap().device_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join(relay::KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private to its owner");
    }
    // The relay knows the device by that id across restarts.
    let relay = Relay::start();
    for _ in 0..2 {
        let config = RelayConfig::default().with_identity(Identity::load(&keys).unwrap());
        Rt::Smol.block_on(async {
            let transport = transport(Rt::Smol, config);
            let listener = plex_runtime::listen(
                &*transport,
                Rt::Smol.runtime(),
                &relay.url(),
                Config::default(),
            )
            .await
            .unwrap();
            assert_eq!(listener.local_endpoint().device, Some(first.device_id()));
        });
    }
}

#[test]
fn many_sessions_in_a_row_all_get_through_the_relay_s_join_races() {
    // Each session is a fresh invitation: the join races of the relay
    // (an `already connected` answer for one side, ~2% of simultaneous
    // joins) are staggered and retried, so every dial gets through.
    let relay = Relay::start();
    let (url, _) = echo_listener(Rt::Tokio, &relay.url(), device());
    Rt::Smol.block_on(async {
        let transport = transport(Rt::Smol, device());
        for i in 0..100 {
            let session =
                plex_runtime::connect(&*transport, Rt::Smol.runtime(), &url, Config::default())
                    .await
                    .unwrap_or_else(|e| panic!("session {i}: {e}"));
            assert_eq!(echo(&session, b"hi").await, b"hi", "session {i}");
        }
    });
}

#[test]
fn a_rate_limited_relay_slows_a_transfer_but_keeps_it_whole() {
    // 256 KiB/s per session (both directions share it), burst 512 KiB: a
    // 1 MiB echo takes seconds.
    let relay = Relay::with_args(&["-per-session-rate=262144"]);
    let (url, _) = echo_listener(Rt::AsyncStd, &relay.url(), device());
    Rt::AsyncStd.block_on(async {
        let transport = transport(Rt::AsyncStd, device());
        let session =
            plex_runtime::connect(&*transport, Rt::AsyncStd.runtime(), &url, Config::default())
                .await
                .unwrap();
        let data = payload(1 << 20);
        let back = Rt::AsyncStd.within(HANG, echo(&session, &data)).await;
        assert_eq!(back.as_deref(), Some(&data[..]));
    });
}

#[test]
fn the_manager_pools_relayed_sessions() {
    let relay = Relay::start();
    let (url, _) = echo_listener(Rt::Smol, &relay.url(), device());
    Rt::Tokio.block_on(async {
        let manager = plex_tokio::manager(plex_runtime::ManagerConfig::default());
        for _ in 0..3 {
            let mut stream = plex_tokio::Stream::from(manager.get_stream(&url).await.unwrap());
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            stream.write_all(b"pooled").await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"pooled");
        }
        assert_eq!(manager.stats().connections_created, 1);
        manager.close().await;
    });
}

#[test]
fn a_close_reaches_the_peer_in_band_though_the_relay_does_not_pass_it_on() {
    // The relay keeps the other side of a session open until its network
    // timeout (2 minutes); plex's GOAWAY ends the peer's session at once.
    let relay = Relay::start();
    Rt::Tokio.block_on(async {
        let transport = transport(Rt::Tokio, device());
        let runtime = Rt::Tokio.runtime();
        let listener = plex_runtime::listen(
            &*transport,
            runtime.clone(),
            &relay.url(),
            Config::default(),
        )
        .await
        .unwrap();
        let url = listener.local_endpoint().to_string();
        let dialling = plex_tokio::connect(&url, Config::default());
        let (dialled, accepted) = tokio::join!(dialling, listener.accept());
        let (dialled, (accepted, peer)) = (dialled.unwrap(), accepted.unwrap());
        assert!(peer.starts_with("relay:"), "{peer}");
        dialled.close().await.unwrap();
        let reason = Rt::Tokio.within(HANG, accepted.closed()).await;
        // The peer's GOAWAY drained: a close in-band, not the transport's end.
        assert_eq!(reason, Some(plex_runtime::CloseReason::Drained));
    });
}
