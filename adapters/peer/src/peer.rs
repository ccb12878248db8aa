//! Peers and lanes: named channels over one session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use plex_proto::rpc::{ClientConfig, ServerConfig};
use plex_runtime::mux::{Mux, MuxListener};
use plex_runtime::{Listener, OpenOptions, Runtime, Session};

use crate::channel::{Channel, StreamChannel, DEFAULT_MAX_MESSAGE};
use crate::rpc::{RpcClient, RpcListener};
use crate::Error;

/// neonplex's default protocol base: lane `rpc` is
/// `neonloom/protocol/v1/rpc`.
pub const DEFAULT_BASE: &str = "neonloom/protocol/v1";

/// The lane RPC uses unless told otherwise.
pub const RPC_LANE: &str = "rpc";

/// The lane of plain byte-message streams (neonplex's `connectStream`).
pub const EVENTS_LANE: &str = "events";

/// How a [`Peer`] names its lanes and bounds its channels and calls.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The protocol base: a lane's protocol is `<base>/<lane>`.
    pub base: String,
    /// The largest message a lane channel sends or accepts.
    pub max_message_size: usize,
    /// Limits and timeouts of the calls this side makes.
    pub client: ClientConfig,
    /// Limits of the calls this side serves.
    pub server: ServerConfig,
    /// How long a call stream this side serves may take to deliver its
    /// request before it is reset: a client cannot hold a stream and a
    /// task by opening a call and sending nothing.
    pub request_timeout: Duration,
    /// How long a lane the peer opens waits for this side to listen on it
    /// before it is refused: a peer may open a lane the moment the
    /// connection is up, before the services here are exposed.
    pub claim_grace: Duration,
}

impl Default for PeerConfig {
    fn default() -> PeerConfig {
        PeerConfig {
            base: DEFAULT_BASE.to_owned(),
            max_message_size: DEFAULT_MAX_MESSAGE,
            client: ClientConfig::default(),
            server: ServerConfig::default(),
            request_timeout: Duration::from_secs(30),
            claim_grace: Duration::from_secs(1),
        }
    }
}

impl PeerConfig {
    /// Sets the protocol base.
    pub fn base(mut self, base: impl Into<String>) -> PeerConfig {
        self.base = base.into();
        self
    }

    /// Sets the largest lane message.
    pub fn max_message_size(mut self, bytes: usize) -> PeerConfig {
        self.max_message_size = bytes;
        self
    }

    /// Sets the limits and timeout of outgoing calls.
    pub fn client(mut self, client: ClientConfig) -> PeerConfig {
        self.client = client;
        self
    }

    /// Sets how long a served call may take to deliver its request.
    pub fn request_timeout(mut self, timeout: Duration) -> PeerConfig {
        self.request_timeout = timeout;
        self
    }

    /// Sets how long an incoming lane waits for a listener.
    pub fn claim_grace(mut self, grace: Duration) -> PeerConfig {
        self.claim_grace = grace;
        self
    }

    /// Sets the limits of served calls.
    pub fn server(mut self, server: ServerConfig) -> PeerConfig {
        self.server = server;
        self
    }
}

/// One side of a connection, speaking in lanes: named message channels,
/// RPC and store ports. Cheap to clone; clones share the connection and
/// the cache of store-port clients.
///
/// The same API runs on two wires, chosen when the peer is made:
///
/// - `plex/1` ([`Peer::new`]): the lane `<base>/<lane>` with id `id` is a
///   stream opened for protocol `<base>/<lane>` and channel id `id`, and
///   every RPC call is a stream of its own;
/// - Protomux ([`Peer::over_protomux`]), the wire JavaScript Plex speaks:
///   the lane is a Protomux channel for the same protocol and id, and RPC
///   calls share one lane channel, multiplexed by request id, as neonplex's
///   do.
#[derive(Clone, Debug)]
pub struct Peer {
    inner: Arc<Inner>,
}

/// The connection a [`Peer`] speaks over.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Wire {
    /// A `plex/1` session.
    Plex(Session),
    /// A Protomux connection.
    Protomux(Mux),
}

#[derive(Debug)]
struct Inner {
    wire: Wire,
    config: PeerConfig,
    /// RPC clients by `(protocol, id)`, so that every client of one lane
    /// shares its request ids and limits (as neonplex's channels are shared).
    rpc: Mutex<HashMap<(Bytes, Bytes), RpcClient>>,
}

impl Peer {
    /// A peer over `session` with the default config.
    ///
    /// The peer claims the session's incoming streams by lane: a stream
    /// no lane listener claims within [`PeerConfig::claim_grace`] (1 s) is
    /// refused, and the call or channel fails with
    /// [`Error::Unavailable`] (see [`Session::set_accept_any`] to take
    /// such streams with `accept_stream` instead). The grace covers a peer
    /// that opens a lane before this side has exposed its services.
    pub fn new(session: Session) -> Peer {
        Peer::from_valid(session, PeerConfig::default())
    }

    /// A peer over `session`; fails if a limit in `config` is zero.
    pub fn with_config(session: Session, config: PeerConfig) -> Result<Peer, Error> {
        validate(&config)?;
        Ok(Peer::from_valid(session, config))
    }

    /// A peer over a Protomux connection with the default config: lanes
    /// are Protomux channels, RPC calls share one channel per lane and id.
    /// A channel the peer opens waits [`PeerConfig::claim_grace`] for a
    /// listener here before it is rejected.
    pub fn over_protomux(mux: Mux) -> Peer {
        Peer::protomux_from_valid(mux, PeerConfig::default())
    }

    /// [`Peer::over_protomux`] with `config`; fails if a limit is zero.
    pub fn protomux_with_config(mux: Mux, config: PeerConfig) -> Result<Peer, Error> {
        validate(&config)?;
        Ok(Peer::protomux_from_valid(mux, config))
    }

    fn protomux_from_valid(mux: Mux, config: PeerConfig) -> Peer {
        mux.set_claim_grace(Some(config.claim_grace));
        Peer::build(Wire::Protomux(mux), config)
    }

    fn from_valid(session: Session, config: PeerConfig) -> Peer {
        // Lanes are claimed by listeners; a channel or call for a lane
        // nobody serves is refused (`Error::Unavailable`) once the claim
        // grace ends, rather than queued for an `accept_stream` that never
        // comes.
        session.set_claim_grace(Some(config.claim_grace));
        session.set_accept_any(false);
        Peer::build(Wire::Plex(session), config)
    }

    fn build(wire: Wire, config: PeerConfig) -> Peer {
        Peer {
            inner: Arc::new(Inner {
                wire,
                config,
                rpc: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The connection underneath.
    pub fn wire(&self) -> &Wire {
        &self.inner.wire
    }

    /// The `plex/1` session underneath, on that wire.
    pub fn session(&self) -> Option<&Session> {
        match &self.inner.wire {
            Wire::Plex(session) => Some(session),
            Wire::Protomux(_) => None,
        }
    }

    /// The Protomux connection underneath, on that wire.
    pub fn mux(&self) -> Option<&Mux> {
        match &self.inner.wire {
            Wire::Protomux(mux) => Some(mux),
            Wire::Plex(_) => None,
        }
    }

    /// The runtime the connection runs on.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        match &self.inner.wire {
            Wire::Plex(session) => session.runtime(),
            Wire::Protomux(mux) => mux.runtime().clone(),
        }
    }

    /// Waits until the connection underneath has closed.
    pub async fn closed(&self) {
        match &self.inner.wire {
            Wire::Plex(session) => {
                session.closed().await;
            }
            Wire::Protomux(mux) => {
                mux.closed().await;
            }
        }
    }
}

fn validate(config: &PeerConfig) -> Result<(), Error> {
    config.client.validate().map_err(Error::Config)?;
    config.server.validate().map_err(Error::Config)?;
    if config.request_timeout.is_zero() {
        return Err(Error::Config(plex_proto::ConfigError::new(
            "request_timeout must not be 0",
        )));
    }
    if config.max_message_size == 0 {
        return Err(Error::Config(plex_proto::ConfigError::new(
            "max_message_size must not be 0",
        )));
    }
    Ok(())
}

impl Peer {
    /// The config.
    pub fn config(&self) -> &PeerConfig {
        &self.inner.config
    }

    /// The protocol name of `lane`: `<base>/<lane>`.
    pub fn protocol(&self, lane: &str) -> Bytes {
        format!("{}/{lane}", self.inner.config.base).into()
    }

    /// The protocol name of `lane`, as text.
    pub(crate) fn protocol_name(&self, lane: &str) -> String {
        format!("{}/{lane}", self.inner.config.base)
    }

    /// Opens a channel on `lane` with id `id`. Returns at once: messages
    /// sent before the peer accepts wait (in the stream's window, or at
    /// the Protomux peer), as neonplex's `connect()` does;
    /// [`Channel::opened`] waits for the peer.
    pub async fn connect_lane(&self, id: impl Into<Bytes>, lane: &str) -> Result<Channel, Error> {
        let max = self.inner.config.max_message_size;
        match &self.inner.wire {
            Wire::Plex(session) => {
                let options = OpenOptions::new(self.protocol(lane), id.into());
                let stream = session.open_stream(options).await?;
                Ok(Channel::stream_channel(StreamChannel::new(stream, max)))
            }
            Wire::Protomux(mux) => {
                let channel = mux.open(&self.protocol_name(lane), id.into(), Bytes::new())?;
                Ok(Channel::mux_channel(channel, max))
            }
        }
    }

    /// Accepts the channels the peer opens on `lane` with id `id`.
    pub fn listen_lane(&self, id: impl Into<Bytes>, lane: &str) -> LaneListener {
        let listening = match &self.inner.wire {
            Wire::Plex(session) => Listening::Plex(session.listen(self.protocol(lane), id.into())),
            Wire::Protomux(mux) => {
                Listening::Protomux(mux.listen(&self.protocol_name(lane), Some(id.into())))
            }
        };
        LaneListener {
            listening,
            max_message: self.inner.config.max_message_size,
        }
    }

    /// [`connect_lane`](Peer::connect_lane) on the `events` lane.
    pub async fn connect_stream(&self, id: impl Into<Bytes>) -> Result<Channel, Error> {
        self.connect_lane(id, EVENTS_LANE).await
    }

    /// [`listen_lane`](Peer::listen_lane) on the `events` lane.
    pub fn listen_stream(&self, id: impl Into<Bytes>) -> LaneListener {
        self.listen_lane(id, EVENTS_LANE)
    }

    /// An RPC client for the service `id` on the `rpc` lane.
    pub fn connect_rpc(&self, id: impl Into<Bytes>) -> RpcClient {
        self.connect_rpc_lane(id, RPC_LANE)
    }

    /// An RPC client for the service `id` on `lane`. Clients are shared
    /// per lane and id: a second connect returns the first client, unless
    /// it was closed.
    pub fn connect_rpc_lane(&self, id: impl Into<Bytes>, lane: &str) -> RpcClient {
        let key = (self.protocol(lane), id.into());
        let mut clients = self
            .inner
            .rpc
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = clients.get(&key);
        if let Some(client) = previous.filter(|c| !c.is_closed()) {
            return client.clone();
        }
        // A closed lane's successor continues its request ids, so a server
        // still winding down the old calls never sees an id twice.
        let first_rid = previous.map_or(1, RpcClient::next_rid);
        let client = RpcClient::new(self, key.0.clone(), key.1.clone(), first_rid);
        clients.insert(key, client.clone());
        client
    }

    /// Accepts calls to the service `id` on the `rpc` lane.
    pub fn listen_rpc(&self, id: impl Into<Bytes>) -> RpcListener {
        self.listen_rpc_lane(id, RPC_LANE)
    }

    /// Accepts calls to the service `id` on `lane`.
    pub fn listen_rpc_lane(&self, id: impl Into<Bytes>, lane: &str) -> RpcListener {
        let listening = match &self.inner.wire {
            Wire::Plex(session) => Listening::Plex(session.listen(self.protocol(lane), id.into())),
            Wire::Protomux(mux) => {
                Listening::Protomux(mux.listen(&self.protocol_name(lane), Some(id.into())))
            }
        };
        RpcListener::new(self, listening)
    }
}

/// A peer in a [`PeerPool`](crate::PeerPool): its store ports are the
/// cached clients of [`connect_store_port`](crate::connect_store_port).
impl crate::Member for Peer {
    fn store_port(&self, id: &Bytes, lane: &str) -> Arc<dyn crate::StorePort> {
        Arc::new(crate::connect_store_port(self, id.clone(), lane))
    }
}

/// Channels the peer opens on one lane and id. Dropping it stops
/// listening and refuses channels not yet accepted.
pub struct LaneListener {
    listening: Listening,
    max_message: usize,
}

/// A lane's listener on either wire.
pub(crate) enum Listening {
    Plex(Listener),
    Protomux(MuxListener),
}

impl Listening {
    /// The next channel, accepted with an empty handshake. Channels the
    /// peer reset before we got to them are skipped; an error means the
    /// connection closed.
    pub(crate) async fn accept(&self, max_message: usize) -> Result<Channel, Error> {
        match self {
            Listening::Plex(listener) => loop {
                let incoming = listener.accept().await?;
                match incoming.accept(Bytes::new()) {
                    Ok(stream) => {
                        let channel = StreamChannel::new(stream, max_message);
                        return Ok(Channel::stream_channel(channel));
                    }
                    Err(plex_runtime::Error::Closed(reason)) => return Err(Error::Closed(reason)),
                    // Reset by the peer while it waited: skip it.
                    Err(_) => {}
                }
            },
            Listening::Protomux(listener) => {
                let channel = listener.accept().await?;
                Ok(Channel::mux_channel(channel, max_message))
            }
        }
    }
}

impl LaneListener {
    /// The next channel the peer opened, accepted with an empty handshake.
    /// Channels the peer reset before we got to them are skipped; an error
    /// means the connection closed.
    pub async fn accept(&self) -> Result<Channel, Error> {
        self.listening.accept(self.max_message).await
    }
}

impl std::fmt::Debug for LaneListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneListener")
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}
