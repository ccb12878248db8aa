//! The TLS connection to the relay: opening it, a dialer's ConnectRequest,
//! a listener's join and the task that keeps it alive.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::relay::{code, Decoder, DeviceId, Message, SessionInvitation};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::session::{classify, close, read_some, within, write_message};
use super::verify::Whose;
use super::{Connector, Identity, RelayConfig};
use crate::tls::provider;
use crate::tls::verify::PinVerifier;
use crate::{BoxIo, Endpoint, Error, RelayError, Runtime};

/// The ALPN protocol of relay control connections.
pub const BEP_RELAY: &[u8] = b"bep-relay";

/// Connects to the relay and runs the TLS handshake: `identity` as the one
/// client certificate, ALPN `bep-relay`, the relay pinned if `?relay=` is
/// set. The ClientHello goes out at once: the relay drops connections
/// silent for a second.
pub(super) async fn open(
    runtime: &dyn Runtime,
    connect: &Connector,
    config: &RelayConfig,
    identity: &Identity,
    relay: &Endpoint,
) -> Result<BoxIo, Error> {
    let authority = relay.authority();
    let unreachable = |reason: String| RelayError::Unreachable {
        relay: authority.clone(),
        reason,
    };
    let timeout = config.session_timeout;
    let tcp = match within(runtime, timeout, connect(authority.clone())).await {
        Some(Ok(tcp)) => tcp,
        Some(Err(e)) => return Err(unreachable(e.to_string()).into()),
        None => return Err(unreachable(format!("no connection within {timeout:?}")).into()),
    };
    let pin = Arc::new(PinVerifier::new(Whose::Relay(relay.relay), provider()));
    let tls_error = |e: rustls::Error| unreachable(e.to_string());
    let mut tls = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(pin)
        .with_client_auth_cert(vec![identity.certificate().clone()], identity.key())
        .map_err(tls_error)?;
    tls.alpn_protocols = vec![BEP_RELAY.to_vec()];
    // The relay ignores SNI; a host that is no valid name sends none.
    let name = ServerName::try_from(relay.host.clone())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let handshake = futures_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp);
    match within(runtime, timeout, handshake).await {
        Some(Ok(io)) => Ok(Box::new(io)),
        Some(Err(e)) => match classify(e) {
            Error::Relay(pin @ RelayError::WrongRelay { .. }) => Err(pin.into()),
            other => Err(unreachable(other.to_string()).into()),
        },
        None => Err(unreachable(format!("no TLS handshake within {timeout:?}")).into()),
    }
}

/// Asks the relay for a session with `target` and returns its invitation.
pub(super) async fn request(
    runtime: &dyn Runtime,
    control: &mut BoxIo,
    target: DeviceId,
    timeout: Duration,
) -> Result<SessionInvitation, Error> {
    write_message(control, &Message::ConnectRequest { id: target.into() }).await?;
    let (mut decoder, mut rest) = (Decoder::new(), Vec::new());
    let answer = within(
        runtime,
        timeout,
        next_answer(control, &mut decoder, &mut rest),
    )
    .await;
    match answer.unwrap_or(Err(RelayError::SessionTimedOut(timeout).into()))? {
        Message::SessionInvitation(invitation) => Ok(invitation),
        Message::Response(r) if r.code == code::NOT_FOUND => {
            Err(RelayError::NotFound(target).into())
        }
        other => Err(refusal(other)),
    }
}

/// Joins the relay as a listener: `JoinRelayRequest`, then its answer.
/// Returns what was read past the answer, for the control task.
pub(super) async fn join(
    runtime: &dyn Runtime,
    control: &mut BoxIo,
    timeout: Duration,
) -> Result<(Decoder, Vec<u8>), Error> {
    let token = String::new();
    write_message(control, &Message::JoinRelayRequest { token }).await?;
    let (mut decoder, mut rest) = (Decoder::new(), Vec::new());
    let answer = within(
        runtime,
        timeout,
        next_answer(control, &mut decoder, &mut rest),
    )
    .await;
    match answer.unwrap_or(Err(RelayError::SessionTimedOut(timeout).into()))? {
        Message::Response(r) if r.code == code::SUCCESS => Ok((decoder, rest)),
        other => Err(refusal(other)),
    }
}

/// The error for an answer other than the one hoped for.
fn refusal(answer: Message) -> Error {
    match answer {
        Message::RelayFull => RelayError::RelayFull.into(),
        Message::Response(r) => RelayError::Refused {
            code: r.code,
            message: r.message,
        }
        .into(),
        other => RelayError::Protocol(format!("unexpected {:?}", other.message_type())).into(),
    }
}

/// The next message other than Ping and Pong, read before the control
/// task runs. Bytes read past it (an invitation right behind a join's
/// Response) stay in `rest`, and a partial frame in `decoder`, for the task.
async fn next_answer(
    control: &mut BoxIo,
    decoder: &mut Decoder,
    rest: &mut Vec<u8>,
) -> Result<Message, Error> {
    let mut buf = [0; 1100];
    loop {
        let n = read_some(control, &mut buf).await?;
        if n == 0 {
            let why = "the relay closed the connection without an answer";
            return Err(RelayError::ControlLost(why.into()).into());
        }
        let mut input = &buf[..n];
        while let Some(message) = decoder
            .decode(&mut input)
            .map_err(|e| RelayError::Protocol(e.to_string()))?
        {
            match message {
                Message::Ping | Message::Pong => {}
                answer => {
                    rest.extend_from_slice(input);
                    return Ok(answer);
                }
            }
        }
    }
}

/// A joined control connection, with what was read past the relay's
/// answer.
pub(super) struct Joined {
    pub(super) io: BoxIo,
    pub(super) decoder: Decoder,
    pub(super) rest: Vec<u8>,
}

/// What a listener's control task shares with its accept side.
pub(super) struct Shared {
    /// Why the task ended, once it has.
    pub(super) ended: Mutex<Option<RelayError>>,
}

/// Keeps a joined listener's control connection: answers Pings, sends its
/// own every `keepalive` (the relay answers with Pong), queues
/// invitations. On RelayFull, a close, an error or more than two
/// keepalives without a byte from the relay, it rejoins for the config's
/// rejoin time; it ends when that fails, or on `stop` (the listener
/// dropped).
pub(super) struct ControlTask {
    pub(super) runtime: Arc<dyn Runtime>,
    pub(super) connect: Connector,
    pub(super) config: RelayConfig,
    pub(super) identity: Identity,
    pub(super) relay: Endpoint,
    pub(super) joined: Joined,
    pub(super) invitations: async_channel::Sender<SessionInvitation>,
    pub(super) stop: async_channel::Receiver<()>,
    pub(super) shared: Arc<Shared>,
}

impl ControlTask {
    pub(super) async fn run(self) {
        let ControlTask {
            runtime,
            connect,
            config,
            identity,
            relay,
            mut joined,
            invitations,
            stop,
            shared,
        } = self;
        let stop = async move {
            // Err once the listener dropped its sender.
            let _ = stop.recv().await;
        };
        let mut stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(stop);
        let ended = loop {
            let served = serve(&runtime, &mut joined, config.keepalive, &invitations);
            let Some(lost) = until(served, stop.as_mut()).await else {
                close(&*runtime, joined.io).await;
                break RelayError::ControlLost("listener closed".into());
            };
            close(&*runtime, joined.io).await;
            if config.rejoin.is_zero() {
                break lost;
            }
            let rejoin = super::join_relay(&*runtime, &connect, &config, &identity, &relay, true);
            match until(rejoin, stop.as_mut()).await {
                Some(Ok(again)) => joined = again,
                Some(Err(_)) => break lost,
                None => break RelayError::ControlLost("listener closed".into()),
            }
        };
        let mut slot = shared.ended.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(ended);
        drop(slot);
        // Closing the queue ends `accept` with the reason just stored.
        invitations.close();
    }
}

/// `future`'s output, or `None` once `stop` completes.
async fn until<F: Future>(
    future: F,
    mut stop: Pin<&mut (dyn Future<Output = ()> + Send)>,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        stop.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Serves one joined connection until it is lost; why.
async fn serve(
    runtime: &Arc<dyn Runtime>,
    joined: &mut Joined,
    keepalive: Duration,
    invitations: &async_channel::Sender<SessionInvitation>,
) -> RelayError {
    let runtime = runtime.clone();
    let lost = RelayError::ControlLost;
    let ping = frame(&Message::Ping);
    let pong = frame(&Message::Pong);
    let silence = 2 * keepalive;
    let mut ping_timer = runtime.sleep_until(runtime.now() + keepalive);
    let mut dead_timer = runtime.sleep_until(runtime.now() + silence);
    let decoder = &mut joined.decoder;
    let mut out: Vec<u8> = Vec::new();
    let mut flushing = false;
    let mut buf = [0u8; 2048];
    let rest = &mut joined.rest;
    let io = &mut joined.io;
    poll_fn(|cx| loop {
        if ping_timer.as_mut().poll(cx).is_ready() {
            out.extend_from_slice(&ping);
            ping_timer = runtime.sleep_until(runtime.now() + keepalive);
            continue;
        }
        if dead_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(lost(format!("nothing from the relay for {silence:?}")));
        }
        if !out.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &out) {
                Poll::Ready(Ok(n)) => {
                    out.drain(..n);
                    flushing = true;
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(lost(e.to_string())),
                Poll::Pending => {}
            }
        } else if flushing {
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Ok(())) => flushing = false,
                Poll::Ready(Err(e)) => return Poll::Ready(lost(e.to_string())),
                Poll::Pending => {}
            }
        }
        let read = if rest.is_empty() {
            Pin::new(&mut *io).poll_read(cx, &mut buf)
        } else {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            rest.drain(..n);
            Poll::Ready(Ok(n))
        };
        match read {
            Poll::Ready(Ok(0)) => return Poll::Ready(lost("the relay closed it".into())),
            Poll::Ready(Ok(n)) => {
                dead_timer = runtime.sleep_until(runtime.now() + silence);
                let mut input = &buf[..n];
                loop {
                    match decoder.decode(&mut input) {
                        Ok(Some(Message::Ping)) => out.extend_from_slice(&pong),
                        Ok(Some(Message::SessionInvitation(invitation))) => {
                            // Full: more invitations than the listener
                            // takes; the dialer times out.
                            let _ = invitations.try_send(invitation);
                        }
                        Ok(Some(Message::RelayFull)) => return Poll::Ready(RelayError::RelayFull),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => return Poll::Ready(RelayError::Protocol(e.to_string())),
                    }
                }
                continue;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(lost(e.to_string())),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}

fn frame(message: &Message) -> Vec<u8> {
    // Ping and Pong have no payload: they always encode.
    message.to_bytes().map(|b| b.to_vec()).unwrap_or_default()
}
