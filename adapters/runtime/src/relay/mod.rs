//! `relay://`: plex sessions through a Syncthing relay (`strelaysrv`,
//! relay protocol v1), for devices that cannot reach each other directly.
//!
//! - **Listen** on `relay://HOST:PORT`: the listener keeps a TLS control
//!   connection to the relay, joined under its [`Identity`]'s
//!   [`DeviceId`]. Its [`local_endpoint`](crate::TransportListener::local_endpoint)
//!   is the URL dialers use: `relay://HOST:PORT/?id=DEVICE-ID`.
//! - **Dial** `relay://HOST:PORT/?id=DEVICE-ID`: asks the relay for a
//!   session with that device.
//! - `?relay=RELAY-ID` on either pins the relay's own certificate (the id
//!   `strelaysrv` prints in its `URI:` line); without it any relay
//!   certificate is accepted. (Syncthing's own URLs call the relay's id
//!   `?id=`; here `?id=` is the device dialled.)
//!
//! Both sides then join the session over plain TCP, wait until both are
//! in (a one-byte READY exchange: the relay can deliver the peer's bytes
//! before its own answer), and run **mutual TLS inside the session**, ALPN
//! `plex/1`, each pinned to the other's device id: the relay sees only
//! ciphertext, and a device that is not the one dialled, or a dialer that
//! is not the one the relay named, fails the handshake
//! ([`RelayError::WrongDevice`]).
//!
//! Keep-alives: the relay drops a control connection silent for its
//! `-network-timeout` (2 minutes by default), and each direction of a
//! session idle that long (later bytes in it are lost), and it never
//! passes a close on. The control connection pings every
//! [`RelayConfig::with_keepalive`] (30 s) and counts the relay dead after
//! two of those without a byte. Inside the session the plex session's own
//! PINGs (`Config::ping_interval`, 30 s by default) keep both directions
//! busy and its GOAWAY closes in-band; keep `ping_interval` well under the
//! relay's network timeout. When the listener's control connection ends
//! (the relay restarted, RelayFull, silence), the relay ends its sessions
//! too; the listener joins again for up to
//! [`RelayConfig::with_rejoin`] (2 minutes), then `accept` fails with the
//! reason ([`RelayError::ControlLost`], [`RelayError::RelayFull`]).
//!
//! The runtime adapters only supply TCP ([`Connector`]); the protocol,
//! TLS (futures-rustls, ring) and timers are shared here.

mod control;
mod identity;
mod session;
mod verify;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::{
    BoxIo, BoxResult, Endpoint, Error, HandshakeListener, RawListener, RelayError, Runtime,
    TransportListener, DEFAULT_HANDSHAKE_TIMEOUT,
};
use control::{ControlTask, Joined, Shared};

pub use control::BEP_RELAY;
pub use identity::{Identity, CERT_FILE, KEY_FILE};
pub use plex_proto::relay::{DeviceId, SessionInvitation};
pub use session::{secure_session, SessionSide};

/// Opens a plain TCP connection to `host:port`: what an adapter gives the
/// relay code, which is runtime-neutral and opens no sockets itself.
pub type Connector = Arc<dyn Fn(String) -> BoxResult<'static, BoxIo> + Send + Sync>;

/// How long a dialer waits out spurious `already connected` answers.
const DIAL_ATTEMPTS: usize = 3;

/// How long a listener retries a join the relay refuses as `already
/// connected` (its previous connection not yet reaped): the relay's
/// default `-network-timeout`, after which it has reaped the old
/// connection however it died. The first wait, doubled each time, and the
/// longest.
const JOIN_RETRY: Duration = Duration::from_secs(120);
const JOIN_BACKOFF: Duration = Duration::from_millis(500);
const JOIN_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Invitations received and not yet being joined; more are dropped.
const INVITATION_QUEUE: usize = 64;

/// The listener joins a session this much after its invitation: joins at
/// the same instant race in the relay (research §7.3).
const LISTENER_STAGGER: Duration = Duration::from_millis(5);

/// A transport's `relay://` settings: the device identity and timings.
///
/// The default generates an identity in memory on first use (shared by
/// clones of the config): enough for dialling; a listener whose id must
/// survive restarts takes one from [`Identity::load_or_generate`].
#[derive(Debug, Clone)]
pub struct RelayConfig {
    identity: Arc<OnceLock<Identity>>,
    keepalive: Duration,
    session_timeout: Duration,
    rejoin: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            identity: Arc::default(),
            keepalive: Duration::from_secs(30),
            session_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            rejoin: JOIN_RETRY,
        }
    }
}

impl RelayConfig {
    /// Uses `identity` as this device's certificate.
    pub fn with_identity(mut self, identity: Identity) -> RelayConfig {
        self.identity = Arc::new(OnceLock::from(identity));
        self
    }

    /// Sends a Ping on the listener's control connection every `interval`
    /// (default 30 s; keep it well under the relay's 2-minute
    /// `-network-timeout`) and counts the relay dead after twice that
    /// without a byte from it.
    pub fn with_keepalive(mut self, interval: Duration) -> RelayConfig {
        self.keepalive = interval;
        self
    }

    /// Bounds each step of a session's set-up (connecting, the relay's
    /// answer, the join and READY, the inner TLS handshake); default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn with_session_timeout(mut self, timeout: Duration) -> RelayConfig {
        self.session_timeout = timeout;
        self
    }

    /// When a listener's connection to the relay ends (the relay
    /// restarted, the network failed, RelayFull), it joins again, retrying
    /// with backoff (0.5 s doubling to 8 s) for up to `time` (default 2
    /// minutes) before `accept` fails with the reason. Sessions through
    /// the old connection end with it (the relay closes them). Zero turns
    /// rejoining off.
    pub fn with_rejoin(mut self, time: Duration) -> RelayConfig {
        self.rejoin = time;
        self
    }

    /// This device's identity, generated on first use if none was given.
    pub fn identity(&self) -> Result<Identity, Error> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity.clone());
        }
        let generated = Identity::generate()?;
        Ok(self.identity.get_or_init(|| generated).clone())
    }

    /// This device's id (generating the identity if need be).
    pub fn device_id(&self) -> Result<DeviceId, Error> {
        Ok(self.identity()?.device_id())
    }
}

/// Dials the device named by `endpoint`'s `?id=` through the relay, and
/// returns the session's byte stream, TLS to that device already running.
///
/// A session lost to the relay's join race (an `already connected`
/// answer, or a peer that never becomes ready) or a step that timed out
/// is requested again, up to three times in all.
pub async fn dial(
    runtime: &dyn Runtime,
    connect: &Connector,
    config: &RelayConfig,
    endpoint: &Endpoint,
) -> Result<BoxIo, Error> {
    let target = endpoint.device.ok_or(RelayError::NoDeviceId)?;
    let identity = config.identity()?;
    let mut attempt = 1;
    loop {
        match dial_once(runtime, connect, config, &identity, endpoint, target).await {
            Err(Error::Relay(RelayError::Refused { code: 2, .. }))
            | Err(Error::Relay(RelayError::SessionTimedOut(_)))
                if attempt < DIAL_ATTEMPTS =>
            {
                attempt += 1;
            }
            done => return done,
        }
    }
}

async fn dial_once(
    runtime: &dyn Runtime,
    connect: &Connector,
    config: &RelayConfig,
    identity: &Identity,
    endpoint: &Endpoint,
    target: DeviceId,
) -> Result<BoxIo, Error> {
    let timeout = config.session_timeout;
    let invitation = request_session(runtime, connect, config, endpoint, target).await?;
    let io = join_session(runtime, connect, endpoint, &invitation, timeout).await?;
    let side = side(&invitation);
    secure_session(runtime, io, identity, target, side, timeout).await
}

/// The first step of [`dial`]: asks the relay at `relay` for a session
/// with `target` over a short control connection, and returns the
/// relay's invitation ([`RelayError::NotFound`] if `target` is not
/// joined). Join it with [`join_session`] before the relay's
/// `-message-timeout` (60 s by default) passes.
pub async fn request_session(
    runtime: &dyn Runtime,
    connect: &Connector,
    config: &RelayConfig,
    relay: &Endpoint,
    target: DeviceId,
) -> Result<SessionInvitation, Error> {
    let identity = config.identity()?;
    let timeout = config.session_timeout;
    let mut control = control::open(runtime, connect, config, &identity, relay).await?;
    let invitation = control::request(runtime, &mut control, target, timeout).await;
    session::close(runtime, control).await;
    invitation
}

/// The second step: joins the session `invitation` offers (plain TCP to
/// the address it names, or to `relay`'s host if it names none) and waits,
/// at most `timeout`, until the peer joined too. The stream is the raw
/// relayed pipe: run [`secure_session`] over it.
///
/// A key the relay no longer knows (expired or used) gives
/// [`RelayError::InvitationExpired`].
pub async fn join_session(
    runtime: &dyn Runtime,
    connect: &Connector,
    relay: &Endpoint,
    invitation: &SessionInvitation,
    timeout: Duration,
) -> Result<BoxIo, Error> {
    session::join(runtime, connect, relay, invitation, timeout).await
}

/// Joins the relay at `endpoint` as a listener and accepts the sessions
/// dialers request, each once its inner TLS handshake is done.
///
/// A join refused as `already connected` (this device's previous
/// connection not yet reaped by the relay) is retried with backoff for
/// about two minutes. Another listener with the same identity on the same
/// relay keeps it refused: one listener per device id per relay. If the
/// connection to the relay ends later, the listener rejoins (see
/// [`RelayConfig::with_rejoin`]).
pub async fn listen(
    runtime: Arc<dyn Runtime>,
    connect: Connector,
    config: &RelayConfig,
    endpoint: &Endpoint,
) -> Result<Box<dyn TransportListener>, Error> {
    let identity = config.identity()?;
    let timeout = config.session_timeout;
    let joined = join_relay(&*runtime, &connect, config, &identity, endpoint, false).await?;
    let (invitations, queue) = async_channel::bounded(INVITATION_QUEUE);
    let (stop, stopped) = async_channel::bounded(1);
    let shared = Arc::new(Shared {
        ended: Mutex::new(None),
    });
    let task = ControlTask {
        runtime: runtime.clone(),
        connect: connect.clone(),
        config: config.clone(),
        identity: identity.clone(),
        relay: endpoint.clone(),
        joined,
        invitations,
        stop: stopped,
        shared: shared.clone(),
    };
    runtime.spawn(Box::pin(task.run()));
    let relay = endpoint.clone();
    let local = Endpoint {
        device: Some(identity.device_id()),
        ..endpoint.clone()
    };
    let raw = Invitations {
        queue,
        _stop: stop,
        shared,
        local,
    };
    let handshake_runtime = runtime.clone();
    let handshake = move |invitation: SessionInvitation| -> BoxResult<'static, BoxIo> {
        let (runtime, connect) = (handshake_runtime.clone(), connect.clone());
        let (identity, relay) = (identity.clone(), relay.clone());
        Box::pin(async move {
            let peer = invitation.from.device_id().ok_or_else(|| {
                RelayError::Protocol("an invitation from an id that is not 32 bytes".into())
            })?;
            runtime.sleep_until(runtime.now() + LISTENER_STAGGER).await;
            let io = join_session(&*runtime, &connect, &relay, &invitation, timeout).await?;
            let side = side(&invitation);
            secure_session(&*runtime, io, &identity, peer, side, timeout).await
        })
    };
    // The whole set-up: stagger, join, READY, TLS.
    let bound = timeout * 2 + LISTENER_STAGGER;
    Ok(Box::new(HandshakeListener::new(
        raw,
        runtime,
        Arc::new(handshake),
        bound,
    )))
}

/// Joins the relay as a listener: a control connection, JoinRelayRequest
/// and the relay's answer. `already connected` (the relay still holds
/// this device's previous connection) is retried with backoff for about
/// two minutes; with `rejoining`, so is every other failure, for the
/// config's rejoin time.
async fn join_relay(
    runtime: &dyn Runtime,
    connect: &Connector,
    config: &RelayConfig,
    identity: &Identity,
    endpoint: &Endpoint,
    rejoining: bool,
) -> Result<Joined, Error> {
    let timeout = config.session_timeout;
    let budget = if rejoining { config.rejoin } else { JOIN_RETRY };
    let give_up = runtime.now() + budget;
    let mut backoff = JOIN_BACKOFF;
    loop {
        let attempt = async {
            let mut io = control::open(runtime, connect, config, identity, endpoint).await?;
            match control::join(runtime, &mut io, timeout).await {
                Ok((decoder, rest)) => Ok(Joined { io, decoder, rest }),
                Err(e) => {
                    session::close(runtime, io).await;
                    Err(e)
                }
            }
        };
        let error = match attempt.await {
            Ok(joined) => return Ok(joined),
            Err(e) => e,
        };
        let again = rejoining || matches!(error, Error::Relay(RelayError::Refused { code: 2, .. }));
        if !again || runtime.now() + backoff > give_up {
            return Err(error);
        }
        runtime.sleep_until(runtime.now() + backoff).await;
        backoff = (backoff * 2).min(JOIN_BACKOFF_MAX);
    }
}

fn side(invitation: &SessionInvitation) -> SessionSide {
    if invitation.server_socket {
        SessionSide::Server
    } else {
        SessionSide::Client
    }
}

/// A listener's invitations, from its control task.
struct Invitations {
    queue: async_channel::Receiver<SessionInvitation>,
    /// Dropped with the listener: the control task then ends.
    _stop: async_channel::Sender<()>,
    shared: Arc<Shared>,
    local: Endpoint,
}

impl RawListener for Invitations {
    type Conn = SessionInvitation;

    fn accept(&self) -> BoxResult<'_, (SessionInvitation, String)> {
        Box::pin(async move {
            match self.queue.recv().await {
                Ok(invitation) => {
                    let peer = match invitation.from.device_id() {
                        Some(id) => format!("relay:{id}"),
                        None => "relay:?".to_string(),
                    };
                    Ok((invitation, peer))
                }
                Err(_) => {
                    let ended = self.shared.ended.lock().unwrap_or_else(|p| p.into_inner());
                    let why = ended.clone().unwrap_or_else(|| {
                        RelayError::ControlLost("the control task ended".into())
                    });
                    Err(why.into())
                }
            }
        })
    }

    fn local_endpoint(&self) -> Endpoint {
        self.local.clone()
    }
}
