//! Helpers shared by the cross-runtime tests: runtimes, connected session
//! pairs, payload patterns, a timeout that works on every runtime, and a TCP
//! proxy that can fail, for peers that vanish.
#![deny(missing_docs)]

mod alloc;
pub mod js;
pub mod relay;
pub mod store_suite;

pub use alloc::{live_bytes, Counting};

/// Runs each named test function (taking an [`Rt`]) on every runtime, as
/// `tokio_runtime::NAME`, `smol_runtime::NAME` and `async_std_runtime::NAME`.
#[macro_export]
macro_rules! on_every_runtime {
    ($($test:ident),* $(,)?) => {
        mod tokio_runtime {
            $(#[test] fn $test() { super::$test($crate::Rt::Tokio) })*
        }
        mod smol_runtime {
            $(#[test] fn $test() { super::$test($crate::Rt::Smol) })*
        }
        mod async_std_runtime {
            $(#[test] fn $test() { super::$test($crate::Rt::AsyncStd) })*
        }
    };
}

/// Generates one test per runtime and wire for each function named, each
/// taking an [`Rt`] and a [`Wire`].
#[macro_export]
macro_rules! on_every_runtime_and_wire {
    ($($test:ident),* $(,)?) => {
        mod tokio_plex {
            $(#[test] fn $test() { super::$test($crate::Rt::Tokio, $crate::Wire::Plex) })*
        }
        mod tokio_protomux {
            $(#[test] fn $test() { super::$test($crate::Rt::Tokio, $crate::Wire::Protomux) })*
        }
        mod smol_plex {
            $(#[test] fn $test() { super::$test($crate::Rt::Smol, $crate::Wire::Plex) })*
        }
        mod smol_protomux {
            $(#[test] fn $test() { super::$test($crate::Rt::Smol, $crate::Wire::Protomux) })*
        }
        mod async_std_plex {
            $(#[test] fn $test() { super::$test($crate::Rt::AsyncStd, $crate::Wire::Plex) })*
        }
        mod async_std_protomux {
            $(#[test] fn $test() { super::$test($crate::Rt::AsyncStd, $crate::Wire::Protomux) })*
        }
    };
}

/// Generates one test per runtime and network transport (TCP, TLS) for
/// each function named, each taking an [`Rt`] and a [`Net`].
#[macro_export]
macro_rules! on_every_runtime_and_net {
    ($($test:ident),* $(,)?) => {
        mod tokio_tcp {
            $(#[test] fn $test() { super::$test($crate::Rt::Tokio, $crate::Net::Tcp) })*
        }
        mod tokio_tls {
            $(#[test] fn $test() { super::$test($crate::Rt::Tokio, $crate::Net::Tls) })*
        }
        mod smol_tcp {
            $(#[test] fn $test() { super::$test($crate::Rt::Smol, $crate::Net::Tcp) })*
        }
        mod smol_tls {
            $(#[test] fn $test() { super::$test($crate::Rt::Smol, $crate::Net::Tls) })*
        }
        mod async_std_tcp {
            $(#[test] fn $test() { super::$test($crate::Rt::AsyncStd, $crate::Net::Tcp) })*
        }
        mod async_std_tls {
            $(#[test] fn $test() { super::$test($crate::Rt::AsyncStd, $crate::Net::Tls) })*
        }
    };
}

/// The byte-stream transports every runtime dials and listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// `tcp://`.
    Tcp,
    /// `tls://`, with [`test_tls`]'s certificate and pin.
    Tls,
}

impl Net {
    /// Both.
    pub const ALL: [Net; 2] = [Net::Tcp, Net::Tls];

    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Net::Tcp => "tcp",
            Net::Tls => "tls",
        }
    }

    /// A loopback URL on any free port.
    pub fn any_port(self) -> String {
        format!("{}://127.0.0.1:0", self.scheme())
    }
}

/// One self-signed certificate for `127.0.0.1` and `localhost`, made once
/// per test process.
pub fn dev_certificate() -> &'static ServerTls {
    static CERT: OnceLock<ServerTls> = OnceLock::new();
    CERT.get_or_init(|| ServerTls::self_signed(&["127.0.0.1", "localhost"]).expect("dev cert"))
}

/// The tests' TLS settings: listen with [`dev_certificate`], dial pinning
/// it.
pub fn test_tls() -> TlsConfig {
    let cert = dev_certificate();
    TlsConfig::default()
        .with_server(cert.clone())
        .with_client(ClientTls::pinned(cert.fingerprint()))
}

/// The wires the Plex layer runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `plex/1` sessions.
    Plex,
    /// Protomux connections (what JavaScript Plex speaks).
    Protomux,
}

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use plex_runtime::mux::{Mux, MuxConfig};
use plex_runtime::tls::{ClientTls, ServerTls, TlsConfig};
use plex_runtime::{
    Config, DriverConfig, Error, OpenOptions, Role, Runtime, Session, Stream, Transport,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The runtimes the adapters support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    /// plex-tokio.
    Tokio,
    /// plex-smol.
    Smol,
    /// plex-async-std.
    AsyncStd,
}

impl Rt {
    /// Every runtime.
    pub const ALL: [Rt; 3] = [Rt::Tokio, Rt::Smol, Rt::AsyncStd];

    /// Runs `future` to completion on this runtime, on the calling thread.
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self {
            Rt::Tokio => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(future),
            Rt::Smol => smol::block_on(future),
            Rt::AsyncStd => async_std::task::block_on(future),
        }
    }

    /// The plex [`Runtime`] of this runtime (call inside [`Rt::block_on`]).
    pub fn runtime(self) -> Arc<dyn Runtime> {
        match self {
            Rt::Tokio => plex_tokio::TokioRuntime::current(),
            Rt::Smol => plex_smol::SmolRuntime::shared(),
            Rt::AsyncStd => plex_async_std::AsyncStdRuntime::shared(),
        }
    }

    /// Dials `url` with this runtime's [`transport`](Rt::transport).
    pub async fn connect(self, url: &str, config: Config) -> Result<Session, Error> {
        plex_runtime::connect(&*self.transport(), self.runtime(), url, config).await
    }

    /// A client and a server session joined over loopback TCP. Call inside
    /// [`Rt::block_on`].
    pub async fn pair(self, client: Config, server: Config) -> (Session, Session) {
        self.pair_over(Net::Tcp, client, server).await
    }

    /// A client and a server session joined over loopback `net`.
    pub async fn pair_over(self, net: Net, client: Config, server: Config) -> (Session, Session) {
        let (client, server, _) = self.pair_through(net, client, server, false).await;
        (client, server)
    }

    /// Like [`Rt::pair`], with the connection going through a [`Proxy`]
    /// the test can make fail.
    pub async fn pair_via_proxy(self, client: Config, server: Config) -> (Session, Session, Proxy) {
        self.pair_via_proxy_over(Net::Tcp, client, server).await
    }

    /// Like [`Rt::pair_over`], with the connection going through a
    /// [`Proxy`] the test can make fail.
    pub async fn pair_via_proxy_over(
        self,
        net: Net,
        client: Config,
        server: Config,
    ) -> (Session, Session, Proxy) {
        let (client, server, proxy) = self.pair_through(net, client, server, true).await;
        (client, server, proxy.expect("proxy"))
    }

    async fn pair_through(
        self,
        net: Net,
        client: Config,
        server: Config,
        proxied: bool,
    ) -> (Session, Session, Option<Proxy>) {
        let (transport, runtime) = (self.transport(), self.runtime());
        let listener = plex_runtime::listen(&*transport, runtime.clone(), &net.any_port(), server)
            .await
            .expect("listen");
        let endpoint = listener.local_endpoint();
        let proxy = proxied.then(|| Proxy::spawn(endpoint.authority().parse().expect("address")));
        let url = match &proxy {
            Some(proxy) => format!("{}://{}", net.scheme(), proxy.addr),
            None => endpoint.to_string(),
        };
        let connect = plex_runtime::connect(&*transport, runtime, &url, client);
        let (client, accepted) = smol::future::zip(connect, listener.accept()).await;
        (client.expect("connect"), accepted.expect("accept").0, proxy)
    }

    /// A client and a server Protomux connection joined over loopback TCP.
    /// Call inside [`Rt::block_on`].
    pub async fn mux_pair(self, config: MuxConfig) -> (Mux, Mux) {
        self.mux_pair_over(Net::Tcp, config).await
    }

    /// A client and a server Protomux connection joined over loopback `net`.
    pub async fn mux_pair_over(self, net: Net, config: MuxConfig) -> (Mux, Mux) {
        use plex_runtime::mux::{connect_mux, listen_mux};
        let (transport, runtime) = (self.transport(), self.runtime());
        let listener = listen_mux(
            &*transport,
            runtime.clone(),
            &net.any_port(),
            config.clone(),
        )
        .await
        .expect("listen");
        let url = listener.local_endpoint().to_string();
        let connect = connect_mux(&*transport, runtime, &url, config);
        let (client, accepted) = smol::future::zip(connect, listener.accept()).await;
        (client.expect("connect"), accepted.expect("accept").0)
    }

    /// This runtime's transport (TCP, TLS with [`test_tls`] and, except on
    /// async-std, WebSocket).
    pub fn transport(self) -> Arc<dyn Transport> {
        self.transport_with(test_tls())
    }

    /// This runtime's transport with these TLS settings.
    pub fn transport_with(self, tls: TlsConfig) -> Arc<dyn Transport> {
        match self {
            Rt::Tokio => Arc::new(plex_tokio::TokioTransport::with_tls(tls)),
            Rt::Smol => Arc::new(plex_smol::SmolTransport::with_tls(tls)),
            Rt::AsyncStd => Arc::new(plex_async_std::AsyncStdTransport::with_tls(tls)),
        }
    }

    /// Like [`Rt::pair_via_proxy`], with the client's transport watched:
    /// the returned flag is raised when the client's connection task drops
    /// it.
    pub async fn pair_watched(
        self,
        client: Config,
        server: Config,
        driver: DriverConfig,
    ) -> (Session, Session, Proxy, Dropped) {
        let transport = self.transport();
        let listener = transport
            .listen(&"tcp://127.0.0.1:0".parse().expect("url"))
            .await
            .expect("listen");
        let proxy = Proxy::spawn(listener.local_endpoint().authority().parse().expect("addr"));
        let endpoint = format!("tcp://{}", proxy.addr).parse().expect("url");
        let (io, accepted) = smol::future::zip(transport.dial(&endpoint), listener.accept()).await;
        let dropped = Dropped::default();
        let watched = Watched {
            io: io.expect("dial"),
            dropped: dropped.clone(),
        };
        let runtime = self.runtime();
        let client = Session::with_driver(watched, Role::Client, client, driver, runtime.clone())
            .expect("client");
        let server = Session::server(accepted.expect("accept").0, server, runtime).expect("server");
        (client, server, proxy, dropped)
    }

    /// Waits (polling on this runtime's timer) until `condition` holds, or
    /// panics after `limit`: for states a test cannot await directly.
    pub async fn until(self, limit: Duration, what: &str, condition: impl Fn() -> bool) {
        let runtime = self.runtime();
        let poll = async {
            while !condition() {
                runtime
                    .sleep_until(runtime.now() + Duration::from_millis(5))
                    .await;
            }
        };
        self.within(limit, poll)
            .await
            .unwrap_or_else(|| panic!("never happened: {what}"));
    }

    /// `future`, or `None` if it takes longer than `limit`, timed by this
    /// runtime's own timer.
    pub async fn within<F: Future>(self, limit: Duration, future: F) -> Option<F::Output> {
        let runtime = self.runtime();
        let deadline = runtime.now() + limit;
        let timeout = async move {
            runtime.sleep_until(deadline).await;
            None
        };
        smol::future::or(async { Some(future.await) }, timeout).await
    }

    /// Listens on `url` (use port 0), reports the bound endpoint through
    /// `bound`, and returns the first connection's server session.
    pub async fn accept_one(
        self,
        url: &str,
        config: Config,
        bound: std::sync::mpsc::Sender<String>,
    ) -> Session {
        let listener = plex_runtime::listen(&*self.transport(), self.runtime(), url, config)
            .await
            .expect("listen");
        bound
            .send(listener.local_endpoint().to_string())
            .expect("report address");
        listener.accept().await.expect("accept").0
    }
}

/// Opens an anonymous stream on `client` and accepts it on `server`:
/// both ends of one stream.
pub async fn open_pair(client: &Session, server: &Session) -> (Stream, Stream) {
    let (a, b) = smol::future::zip(
        client.open_stream(OpenOptions::default()),
        server.accept_stream(),
    )
    .await;
    (a.expect("open"), b.expect("accept"))
}

/// Echoes every stream the peer opens until the session ends.
pub async fn echo_server(session: Session, runtime: Arc<dyn Runtime>) {
    use smol::io::AsyncWriteExt;
    while let Ok(stream) = session.accept_stream().await {
        runtime.spawn(Box::pin(async move {
            let (reader, mut writer) = smol::io::split(stream);
            if smol::io::copy(reader, &mut writer).await.is_ok() {
                let _ = writer.close().await;
            }
        }));
    }
}

/// The byte at `offset` of a test payload: every lost, duplicated or
/// reordered byte shows.
pub fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8).wrapping_mul(7)) as u8
}

/// `len` bytes of [`pattern`].
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(pattern).collect()
}

/// Raised when a [`Watched`] transport is dropped.
#[derive(Debug, Clone, Default)]
pub struct Dropped(Arc<AtomicBool>);

impl Dropped {
    /// Whether the transport was dropped.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A transport that raises a flag when dropped.
pub struct Watched<T> {
    io: T,
    dropped: Dropped,
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        self.dropped.0.store(true, Ordering::Release);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// A TCP proxy on loopback that can fail, to make a peer vanish.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: Arc<Notify>,
    blackhole: Arc<Notify>,
}

impl Proxy {
    /// Forwards one connection on a fresh port to `target`, on a thread of
    /// its own, so it works whatever runtime the test uses.
    pub fn spawn(target: SocketAddr) -> Proxy {
        let (cut, blackhole) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (on_cut, on_blackhole) = (cut.clone(), blackhole.clone());
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                bound_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("report");
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    return;
                };
                // As the adapters do: without it, Nagle and delayed acks
                // add tens of milliseconds to small messages.
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    // Dropping both sockets closes both connections.
                    _ = on_cut.notified() => {}
                    // Keep both sockets open but forward nothing, ever.
                    _ = on_blackhole.notified() => std::future::pending::<()>().await,
                }
                let _ = inbound.shutdown().await;
            });
        });
        Proxy {
            addr: bound_rx.recv().expect("proxy address"),
            cut,
            blackhole,
        }
    }

    /// Closes the connection in both directions.
    pub fn cut(&self) {
        self.cut.notify_one();
    }

    /// Stops forwarding without closing anything: the peer is unreachable.
    pub fn blackhole(&self) {
        self.blackhole.notify_one();
    }
}
