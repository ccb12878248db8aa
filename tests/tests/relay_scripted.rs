//! `relay://` against a scripted fake relay, for what a real `strelaysrv`
//! does only by chance or after minutes: the peer's bytes arriving before
//! the session Response (race A), a spurious `already connected` on a
//! session join (race B), a listener's join refused while the relay still
//! holds its previous connection, RelayFull on a joined listener, a relay
//! that goes silent, the Ping/Pong keep-alive of the control connection,
//! and a lying relay whose session peer is an impostor.

use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use plex_proto::relay::{Header, Message, Opaque, Response, SessionInvitation, HEADER_LEN, READY};
use plex_runtime::relay::{secure_session, DeviceId, Identity, RelayConfig, SessionSide};
use plex_runtime::tls::rustls;
use plex_runtime::{BoxIo, Config, Error, OpenOptions, RelayError, Session};
use plex_smol::{SmolRuntime, SmolTransport};
use plex_tests::echo_server;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

/// A relay that does what each test tells it: a TLS control port and a
/// plain session port on loopback.
struct FakeRelay {
    control: TcpListener,
    session: TcpListener,
    tls: TlsAcceptor,
}

impl FakeRelay {
    async fn start() -> FakeRelay {
        let cert = rcgen::generate_simple_self_signed(vec!["relay".to_string()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key.into())
            .unwrap();
        config.alpn_protocols = vec![b"bep-relay".to_vec()];
        FakeRelay {
            control: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            session: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tls: TlsAcceptor::from(Arc::new(config)),
        }
    }

    /// `relay://127.0.0.1:PORT`, with `?id=` if dialling `device`.
    fn url(&self, device: Option<DeviceId>) -> String {
        let addr = self.control.local_addr().unwrap();
        match device {
            Some(id) => format!("relay://{addr}/?id={id}"),
            None => format!("relay://{addr}"),
        }
    }

    /// The next control connection, TLS done.
    async fn control(&self) -> impl AsyncRead + AsyncWrite + Unpin {
        let (tcp, _) = self.control.accept().await.unwrap();
        self.tls.accept(tcp).await.unwrap()
    }

    /// An invitation to this relay's session port (address left empty: the
    /// client uses the host it dialled).
    fn invitation(&self, from: DeviceId, key: u8, server_socket: bool) -> Message {
        Message::SessionInvitation(SessionInvitation {
            from: from.into(),
            key: [key; 32].into(),
            address: Opaque::default(),
            port: self.session.local_addr().unwrap().port(),
            server_socket,
        })
    }

    /// The next session join; returns the connection and its key's byte.
    async fn join(&self) -> (TcpStream, u8) {
        let (mut tcp, _) = self.session.accept().await.unwrap();
        match read_message(&mut tcp).await {
            Message::JoinSessionRequest { key } => (tcp, key.as_bytes()[0]),
            other => panic!("expected a session join, got {other:?}"),
        }
    }
}

async fn read_message(io: &mut (impl AsyncRead + Unpin)) -> Message {
    let mut head = [0; HEADER_LEN];
    io.read_exact(&mut head).await.unwrap();
    let header = Header::decode(&head).unwrap();
    let mut payload = vec![0; header.len];
    io.read_exact(&mut payload).await.unwrap();
    Message::decode(header.kind, &payload).unwrap()
}

async fn write_message(io: &mut (impl AsyncWrite + Unpin), message: &Message) {
    io.write_all(&message.to_bytes().unwrap()).await.unwrap();
    io.flush().await.unwrap();
}

fn response(code: i32, message: &str) -> Message {
    Message::Response(Response {
        code,
        message: message.into(),
    })
}

fn device() -> RelayConfig {
    RelayConfig::default().with_identity(Identity::generate().unwrap())
}

/// Listens through `fake` with `config`, in a task; the task returns the
/// error `accept` ends with.
fn listen_until_error(fake: &FakeRelay, config: RelayConfig) -> smol::Task<Error> {
    let url = fake.url(None);
    smol::spawn(async move {
        let transport = SmolTransport::default().with_relay(config);
        let server =
            plex_runtime::listen(&transport, SmolRuntime::shared(), &url, Config::default())
                .await
                .unwrap();
        loop {
            if let Err(e) = server.accept().await {
                return e;
            }
        }
    })
}

#[test]
fn relay_full_ends_a_listener_that_does_not_rejoin_with_a_typed_error() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let ended = listen_until_error(&fake, device().with_rejoin(Duration::ZERO));
        let mut control = fake.control().await;
        assert!(
            matches!(read_message(&mut control).await, Message::JoinRelayRequest { token } if token.is_empty())
        );
        write_message(&mut control, &response(0, "success")).await;
        write_message(&mut control, &Message::RelayFull).await;
        let err = ended.await;
        assert!(matches!(err, Error::Relay(RelayError::RelayFull)), "{err}");
    });
}

#[test]
fn the_listener_answers_pings_sends_its_own_and_gives_up_on_a_silent_relay() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let config = device()
            .with_keepalive(Duration::from_millis(300))
            .with_rejoin(Duration::ZERO);
        let ended = listen_until_error(&fake, config);
        let mut control = fake.control().await;
        read_message(&mut control).await;
        write_message(&mut control, &response(0, "success")).await;
        write_message(&mut control, &Message::Ping).await;
        // Our Ping is answered; the listener's own keep-alive Ping comes too.
        let (mut pong, mut ping) = (false, false);
        while !(pong && ping) {
            match read_message(&mut control).await {
                Message::Pong => pong = true,
                Message::Ping => ping = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Now the relay says nothing: two keep-alives later it is dead.
        let err = ended.await;
        assert!(
            matches!(&err, Error::Relay(RelayError::ControlLost(why)) if why.contains("nothing from the relay")),
            "{err}"
        );
        drop(control);
    });
}

/// Plays the listener `peer` on a joined session: READY and mutual TLS
/// pinned to `dialer`, then an echo server.
async fn serve_as(peer: Identity, dialer: DeviceId, mut tcp: TcpStream) {
    let mut ready = [0];
    tcp.read_exact(&mut ready).await.unwrap();
    assert_eq!(ready[0], READY, "the dialer sends READY after its Response");
    let runtime = SmolRuntime::shared();
    let timeout = Duration::from_secs(10);
    let io = secure_session(
        &*runtime,
        Box::new(tcp) as BoxIo,
        &peer,
        dialer,
        SessionSide::Server,
        timeout,
    )
    .await
    .unwrap();
    let session = Session::server(io, Config::default(), runtime.clone()).unwrap();
    echo_server(session, runtime).await;
}

/// Dials `url` with `config` in a task; the task echoes one message.
fn dial_and_echo(url: String, config: RelayConfig) -> smol::Task<Result<Vec<u8>, Error>> {
    smol::spawn(async move {
        let transport = SmolTransport::default().with_relay(config);
        let session =
            plex_runtime::connect(&transport, SmolRuntime::shared(), &url, Config::default())
                .await?;
        let mut stream = session.open_stream(OpenOptions::default()).await?;
        stream.write_all(b"through").await?;
        stream.close().await?;
        let mut back = Vec::new();
        stream.read_to_end(&mut back).await?;
        Ok(back)
    })
}

#[test]
fn the_peer_s_ready_arriving_before_the_session_response_is_no_harm() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let listener = Identity::generate().unwrap();
        let dialer = device();
        let dialer_id = dialer.device_id().unwrap();
        let dialled = dial_and_echo(fake.url(Some(listener.device_id())), dialer);

        let mut control = fake.control().await;
        match read_message(&mut control).await {
            Message::ConnectRequest { id } => {
                assert_eq!(id.device_id(), Some(listener.device_id()))
            }
            other => panic!("expected ConnectRequest, got {other:?}"),
        }
        write_message(
            &mut control,
            &fake.invitation(listener.device_id(), 1, false),
        )
        .await;
        let (mut tcp, key) = fake.join().await;
        assert_eq!(key, 1);
        // Race A: the peer's READY overtakes the relay's Response.
        let mut wire = vec![READY];
        wire.extend_from_slice(&response(0, "success").to_bytes().unwrap());
        tcp.write_all(&wire).await.unwrap();
        smol::spawn(serve_as(listener, dialer_id, tcp)).detach();
        assert_eq!(dialled.await.unwrap(), b"through");
    });
}

#[test]
fn a_spurious_already_connected_on_the_join_is_retried_with_a_new_request() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let listener = Identity::generate().unwrap();
        let dialer = device();
        let dialer_id = dialer.device_id().unwrap();
        let dialled = dial_and_echo(fake.url(Some(listener.device_id())), dialer);

        // Race B: the first session's join is refused as already connected.
        let mut control = fake.control().await;
        read_message(&mut control).await;
        write_message(
            &mut control,
            &fake.invitation(listener.device_id(), 1, false),
        )
        .await;
        let (mut tcp, key) = fake.join().await;
        assert_eq!(key, 1);
        write_message(&mut tcp, &response(2, "already connected")).await;

        // The dialer asks again, and the second session works.
        let mut control = fake.control().await;
        assert!(matches!(
            read_message(&mut control).await,
            Message::ConnectRequest { .. }
        ));
        write_message(
            &mut control,
            &fake.invitation(listener.device_id(), 2, false),
        )
        .await;
        let (mut tcp, key) = fake.join().await;
        assert_eq!(key, 2, "the new invitation's key");
        write_message(&mut tcp, &response(0, "success")).await;
        tcp.write_all(&[READY]).await.unwrap();
        smol::spawn(serve_as(listener, dialer_id, tcp)).detach();
        assert_eq!(dialled.await.unwrap(), b"through");
    });
}

#[test]
fn a_session_peer_that_is_not_the_dialled_device_is_refused() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let listener = Identity::generate().unwrap();
        let impostor = Identity::generate().unwrap();
        let dialer = device();
        let dialer_id = dialer.device_id().unwrap();
        let dialled = dial_and_echo(fake.url(Some(listener.device_id())), dialer);

        let mut control = fake.control().await;
        read_message(&mut control).await;
        // A lying relay: the invitation claims the listener, an impostor
        // joins with its own certificate.
        write_message(
            &mut control,
            &fake.invitation(listener.device_id(), 1, false),
        )
        .await;
        let (mut tcp, _) = fake.join().await;
        write_message(&mut tcp, &response(0, "success")).await;
        tcp.write_all(&[READY]).await.unwrap();
        let impostor_id = impostor.device_id();
        let runtime = SmolRuntime::shared();
        let serving = smol::spawn(async move {
            let mut ready = [0];
            tcp.read_exact(&mut ready).await.unwrap();
            let io = Box::new(tcp) as BoxIo;
            let timeout = Duration::from_secs(10);
            secure_session(
                &*runtime,
                io,
                &impostor,
                dialer_id,
                SessionSide::Server,
                timeout,
            )
            .await
            .map(|_| ())
        });
        let err = dialled.await.unwrap_err();
        let expected = RelayError::WrongDevice {
            expected: listener.device_id(),
            found: impostor_id,
        };
        assert!(matches!(&err, Error::Relay(e) if *e == expected), "{err}");
        assert!(serving.await.is_err(), "the impostor's handshake fails too");
    });
}

#[test]
fn a_join_refused_as_already_connected_is_retried_until_the_relay_takes_it() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let config = device();
        let id = config.device_id().unwrap();
        let url = fake.url(None);
        let listening = smol::spawn(async move {
            let transport = SmolTransport::default().with_relay(config);
            let server =
                plex_runtime::listen(&transport, SmolRuntime::shared(), &url, Config::default())
                    .await?;
            Ok::<_, Error>(server.local_endpoint())
        });
        // The relay still holds this device's previous connection.
        let mut first = fake.control().await;
        read_message(&mut first).await;
        write_message(&mut first, &response(2, "already connected")).await;
        // The listener comes back after a pause, and is taken.
        let mut second = fake.control().await;
        assert!(matches!(
            read_message(&mut second).await,
            Message::JoinRelayRequest { .. }
        ));
        write_message(&mut second, &response(0, "success")).await;
        let local = listening.await.unwrap();
        assert_eq!(local.device, Some(id));
    });
}

#[test]
fn a_listener_dropped_by_the_relay_joins_again() {
    smol::block_on(async {
        let fake = FakeRelay::start().await;
        let listener = device();
        let id = listener.device_id().unwrap();
        let dialer = device();
        let dialer_id = dialer.device_id().unwrap();
        let url = fake.url(None);
        let transport = SmolTransport::default().with_relay(listener);
        let listening =
            plex_runtime::listen(&transport, SmolRuntime::shared(), &url, Config::default());
        let joining = async {
            let mut control = fake.control().await;
            read_message(&mut control).await;
            write_message(&mut control, &response(0, "success")).await;
            control
        };
        let (server, mut control) = smol::future::zip(listening, joining).await;
        let server = server.unwrap();
        // Dropped for being over the limits: the listener comes back.
        write_message(&mut control, &Message::RelayFull).await;
        let mut control = fake.control().await;
        assert!(matches!(
            read_message(&mut control).await,
            Message::JoinRelayRequest { .. }
        ));
        write_message(&mut control, &response(0, "success")).await;
        // And takes sessions on the new connection.
        write_message(&mut control, &fake.invitation(dialer_id, 3, true)).await;
        let accepting = smol::spawn(async move { server.accept().await.map(|(_, peer)| peer) });
        let (mut tcp, key) = fake.join().await;
        assert_eq!(key, 3);
        write_message(&mut tcp, &response(0, "success")).await;
        tcp.write_all(&[READY]).await.unwrap();
        let mut ready = [0];
        tcp.read_exact(&mut ready).await.unwrap();
        let runtime = SmolRuntime::shared();
        let identity = dialer.identity().unwrap();
        let timeout = Duration::from_secs(10);
        let io = secure_session(
            &*runtime,
            Box::new(tcp) as BoxIo,
            &identity,
            id,
            SessionSide::Client,
            timeout,
        )
        .await
        .unwrap();
        let _session = Session::client(io, Config::default(), runtime).unwrap();
        assert_eq!(accepting.await.unwrap(), format!("relay:{dialer_id}"));
    });
}
