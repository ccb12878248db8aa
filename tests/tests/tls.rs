//! `tls://` on every runtime: a pin in the URL with the default settings,
//! CA and PEM files, each typed failure a client sees (unknown issuer,
//! wrong name, expired, pin mismatch, no common ALPN, a plain TCP peer, a
//! silent peer), and Protomux and the Manager over TLS.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plex_runtime::mux::MuxConfig;
use plex_runtime::tls::{rustls, ClientTls, ServerTls, TlsConfig};
use plex_runtime::{Config, Error, Fingerprint, ManagerConfig, OpenOptions, Session, TlsError};
use plex_tests::{dev_certificate, echo_server, Net, Rt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// A test certificate authority.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, as PEM.
struct Issued {
    chain: String,
    key: String,
}

impl Ca {
    /// A CA named `name` (two CAs of one name look like one that signed
    /// badly).
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate for `names`, valid from `from` to `until` (years).
    fn issue(&self, names: &[&str], from: i32, until: i32) -> Issued {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Issued {
            chain: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A valid certificate for 127.0.0.1, as a server's settings.
    fn server(&self, names: &[&str], from: i32, until: i32) -> ServerTls {
        let issued = self.issue(names, from, until);
        ServerTls::from_pem(issued.chain.as_bytes(), issued.key.as_bytes()).unwrap()
    }

    fn client(&self) -> ClientTls {
        ClientTls::ca_pem(self.pem().as_bytes()).unwrap()
    }
}

/// Serves echo sessions on `tls://127.0.0.1:0` with `server`'s
/// certificate, in the background of the current runtime; its URL.
async fn serve(rt: Rt, server: ServerTls) -> String {
    let transport = rt.transport_with(TlsConfig::default().with_server(server));
    let url = Net::Tls.any_port();
    let listener = plex_runtime::listen(&*transport, rt.runtime(), &url, Config::default())
        .await
        .unwrap();
    let url = listener.local_endpoint().to_string();
    let runtime = rt.runtime();
    rt.runtime().spawn(Box::pin(async move {
        while let Ok((session, _)) = listener.accept().await {
            runtime.spawn(Box::pin(echo_server(session, runtime.clone())));
        }
    }));
    url
}

/// Dials `url` trusting what `client` trusts.
async fn dial(rt: Rt, client: ClientTls, url: &str) -> Result<Session, Error> {
    let transport = rt.transport_with(TlsConfig::default().with_client(client));
    plex_runtime::connect(&*transport, rt.runtime(), url, Config::default()).await
}

/// Echoes one message on a new stream.
async fn round_trip(session: &Session) {
    let mut stream = session.open_stream(OpenOptions::default()).await.unwrap();
    stream.write_all(b"over tls").await.unwrap();
    stream.close().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"over tls");
}

fn tls_error(result: Result<Session, Error>) -> TlsError {
    match result {
        Err(Error::Tls(e)) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn the_default_connect_reaches_a_server_pinned_in_the_url() {
    for rt in Rt::ALL {
        rt.block_on(async {
            let cert = dev_certificate();
            let url = serve(rt, cert.clone()).await;
            let pinned = format!("{url}?fingerprint={}", cert.fingerprint());
            let session = match rt {
                Rt::Tokio => plex_tokio::connect(&pinned, Config::default()).await,
                Rt::Smol => plex_smol::connect(&pinned, Config::default()).await,
                Rt::AsyncStd => plex_async_std::connect(&pinned, Config::default()).await,
            };
            round_trip(&session.unwrap()).await;
        });
    }
}

#[test]
fn pem_files_and_a_ca_file_are_trusted() {
    let ca = Ca::new("plex test CA");
    let issued = ca.issue(&["127.0.0.1"], 2020, 4000);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("chain.pem"), &issued.chain).unwrap();
    std::fs::write(path("key.pem"), &issued.key).unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    let server = ServerTls::from_pem_files(path("chain.pem"), path("key.pem")).unwrap();
    let client = ClientTls::ca_file(path("ca.pem")).unwrap();
    for rt in Rt::ALL {
        rt.block_on(async {
            let url = serve(rt, server.clone()).await;
            round_trip(&dial(rt, client.clone(), &url).await.unwrap()).await;
        });
    }
    let missing = ClientTls::ca_file(path("nowhere.pem")).unwrap_err();
    assert!(
        matches!(missing, Error::Tls(TlsError::Load { .. })),
        "{missing}"
    );
    let not_pem = ServerTls::from_pem(b"junk", issued.key.as_bytes()).unwrap_err();
    assert!(
        matches!(not_pem, Error::Tls(TlsError::Load { .. })),
        "{not_pem}"
    );
}

#[test]
fn each_certificate_failure_is_a_typed_error_on_every_runtime() {
    let (ca, other_ca) = (Ca::new("plex test CA"), Ca::new("another CA"));
    let good = ca.server(&["127.0.0.1"], 2020, 4000);
    let wrong_name = ca.server(&["plex.invalid"], 2020, 4000);
    let expired = ca.server(&["127.0.0.1"], 2000, 2001);
    for rt in Rt::ALL {
        rt.block_on(async {
            let url = serve(rt, good.clone()).await;
            let unknown = tls_error(dial(rt, other_ca.client(), &url).await);
            assert_eq!(unknown, TlsError::UnknownIssuer, "{rt:?}");

            let url = serve(rt, wrong_name.clone()).await;
            let name = tls_error(dial(rt, ca.client(), &url).await);
            let host = "127.0.0.1".to_string();
            assert_eq!(name, TlsError::WrongName { host }, "{rt:?}");

            let url = serve(rt, expired.clone()).await;
            let late = tls_error(dial(rt, ca.client(), &url).await);
            assert_eq!(late, TlsError::Expired, "{rt:?}");

            let url = serve(rt, good.clone()).await;
            let wrong = Fingerprint([7; 32]);
            let mismatch = tls_error(dial(rt, ClientTls::pinned(wrong), &url).await);
            let expected = TlsError::FingerprintMismatch {
                expected: wrong,
                found: good.fingerprint(),
            };
            assert_eq!(mismatch, expected, "{rt:?}");
            // A pin in the URL overrides the client's trust, both ways.
            let pinned = format!("{url}?fingerprint={wrong}");
            let mismatch = tls_error(dial(rt, ca.client(), &pinned).await);
            assert_eq!(mismatch, expected, "{rt:?}");
            let pinned = format!("{url}?fingerprint={}", good.fingerprint());
            round_trip(&dial(rt, other_ca.client(), &pinned).await.unwrap()).await;
        });
    }
}

#[test]
fn a_client_offering_only_another_alpn_is_refused() {
    let ca = Ca::new("plex test CA");
    let server = ca.server(&["127.0.0.1"], 2020, 4000);
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = rustls::pki_types::CertificateDer::from(ca.0.der().to_vec());
    roots.add(ca_der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let h2_only = ClientTls::custom(Arc::new(config));
    for rt in Rt::ALL {
        rt.block_on(async {
            let url = serve(rt, server.clone()).await;
            let refused = tls_error(dial(rt, h2_only.clone(), &url).await);
            assert_eq!(refused, TlsError::NoCommonProtocol, "{rt:?}");
        });
    }
}

#[test]
fn a_plain_tcp_peer_is_not_tls_and_a_silent_one_times_out() {
    for rt in Rt::ALL {
        rt.block_on(async {
            // A plex server without TLS reads the ClientHello as a frame
            // header, answers with GOAWAY and closes.
            let plain = plex_runtime::listen(
                &*rt.transport(),
                rt.runtime(),
                &Net::Tcp.any_port(),
                Config::default(),
            )
            .await
            .unwrap();
            let url = format!("tls://{}", plain.local_endpoint().authority());
            let accept = async {
                let _ = plain.accept().await;
            };
            let client = dev_certificate().fingerprint();
            let (dialled, ()) =
                smol::future::zip(dial(rt, ClientTls::pinned(client), &url), accept).await;
            assert_eq!(tls_error(dialled), TlsError::NotTls, "{rt:?}");

            // A peer that accepts and says nothing.
            let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("tls://{}", silent.local_addr().unwrap());
            let wait = Duration::from_millis(200);
            let client = ClientTls::pinned(client).with_handshake_timeout(wait);
            let timed_out = tls_error(dial(rt, client, &url).await);
            assert_eq!(timed_out, TlsError::HandshakeTimeout(wait), "{rt:?}");
            let io = std::io::Error::from(Error::Tls(timed_out));
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        });
    }
}

#[test]
fn listening_on_tls_needs_a_certificate() {
    for rt in Rt::ALL {
        rt.block_on(async {
            let transport = rt.transport_with(TlsConfig::default());
            let url = Net::Tls.any_port();
            let listen = plex_runtime::listen(&*transport, rt.runtime(), &url, Config::default());
            let err = listen.await.unwrap_err();
            assert!(
                matches!(err, Error::Tls(TlsError::NoServerCertificate)),
                "{rt:?}: {err}"
            );
        });
    }
}

#[test]
fn protomux_runs_over_tls_on_every_runtime() {
    for rt in Rt::ALL {
        rt.block_on(async {
            let (client, server) = rt.mux_pair_over(Net::Tls, MuxConfig::default()).await;
            let listener = server.listen("plex/test", None);
            let ours = client.open("plex/test", &b"hi"[..], "").unwrap();
            let theirs = listener.accept().await.unwrap();
            let big: Bytes = plex_tests::payload(1 << 20).into();
            ours.send(Bytes::from_static(b"first")).await.unwrap();
            ours.send(big.clone()).await.unwrap();
            assert_eq!(theirs.recv().await.unwrap().unwrap(), "first");
            assert_eq!(theirs.recv().await.unwrap().unwrap(), big);
            theirs.send(Bytes::from_static(b"back")).await.unwrap();
            assert_eq!(ours.recv().await.unwrap().unwrap(), "back", "{rt:?}");
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_pools_tls_connections_and_counts_them() {
    let cert = dev_certificate();
    let url = serve(Rt::Tokio, cert.clone()).await;
    let pinned = format!("{url}?fingerprint={}", cert.fingerprint());
    let mut config = ManagerConfig::default();
    config.max_streams_per_connection = 2;
    // The default manager: the pin travels in the URL.
    let manager = plex_tokio::manager(config);
    let streams = [
        manager.get_stream(&pinned).await.unwrap(),
        manager.get_stream(&pinned).await.unwrap(),
        manager.get_stream(&pinned).await.unwrap(),
    ];
    for stream in streams {
        let mut stream = plex_tokio::Stream::from(stream);
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"pooled")
            .await
            .unwrap();
        let mut back = [0; 6];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut back)
            .await
            .unwrap();
        assert_eq!(&back, b"pooled");
    }
    let stats = manager.stats();
    assert_eq!((stats.connections_created, stats.total_streams), (2, 3));
    assert!(
        stats.bytes_sent >= 18 && stats.bytes_received >= 18,
        "{stats:?}"
    );
    // A pin that does not match fails the dial, counted as an error.
    let wrong = format!("{url}?fingerprint={}", Fingerprint([1; 32]));
    let err = manager.get_stream(&wrong).await.unwrap_err();
    assert!(
        matches!(err, Error::Tls(TlsError::FingerprintMismatch { .. })),
        "{err}"
    );
    assert_eq!(manager.stats().connection_errors, 1);
    manager.close().await;
}

/// Each adapter's `connect_with` dials `tls://` trusting what its options
/// say, and presents its token in the connection's authentication: a gated
/// server admits the right token and refuses a wrong one, on every runtime.
#[test]
fn connect_with_trusts_its_options_and_presents_its_token_on_every_runtime() {
    use plex_runtime::auth::{gate, AuthError, Refusal};
    use plex_runtime::ConnectOptions;

    for rt in Rt::ALL {
        rt.block_on(async {
            let listener = plex_runtime::listen(
                &*rt.transport(),
                rt.runtime(),
                "tls://127.0.0.1:0",
                Config::default(),
            )
            .await
            .unwrap();
            let url = listener.local_endpoint().to_string();
            // The sessions stay open until both clients have their verdicts.
            let serve = async {
                let mut sessions = Vec::new();
                for _ in 0..2 {
                    let (session, _) = listener.accept().await.unwrap();
                    let request = gate(&session, Duration::from_secs(30)).await.unwrap();
                    match request.token() {
                        Some("right") => request.admit().unwrap(),
                        _ => request.refuse(Refusal::Denied, "wrong token").unwrap(),
                    }
                    sessions.push(session);
                }
                sessions
            };
            let dial = async {
                let trusted = ConnectOptions::default()
                    .tls(ClientTls::pinned(dev_certificate().fingerprint()));
                let connect = |options: ConnectOptions| {
                    let url = url.clone();
                    async move {
                        match rt {
                            Rt::Tokio => plex_tokio::connect_with(&url, &options).await,
                            Rt::Smol => plex_smol::connect_with(&url, &options).await,
                            Rt::AsyncStd => plex_async_std::connect_with(&url, &options).await,
                        }
                    }
                };
                let admitted = connect(trusted.clone().token("right")).await;
                assert!(admitted.is_ok(), "{rt:?}: {admitted:?}");
                let refused = connect(trusted.token("wrong")).await;
                assert!(
                    matches!(&refused, Err(Error::Auth(AuthError::Denied(m))) if m == "wrong token"),
                    "{rt:?}: {refused:?}"
                );
            };
            smol::future::zip(serve, dial).await;
        });
    }
}
