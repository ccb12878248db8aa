//! Store ports over RPC: the client proxy, the serving side, caps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use plex_proto::rpc::{Body, Envelope, Method};

use super::{Caps, Entries, Entry, Range, StoreFuture, StorePort};
use crate::rpc::{Replies, Request, Response, RpcClient, Service, Serving};
use crate::{Error, Peer};

/// A store port on a peer, reached over RPC. Made by
/// [`connect_store_port`]; clones share one lane.
#[derive(Clone, Debug)]
pub struct RemoteStore {
    client: RpcClient,
}

impl RemoteStore {
    pub(crate) fn new(client: RpcClient) -> RemoteStore {
        RemoteStore { client }
    }

    /// The RPC client underneath: stats, close, timeouts.
    pub fn client(&self) -> &RpcClient {
        &self.client
    }

    async fn unary(&self, body: Body) -> Result<crate::rpc::Answer, Error> {
        self.client.call(body.method(), body.to_bytes()).await
    }
}

impl StorePort for RemoteStore {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { Ok(self.unary(Body::Get { key, caps }).await?.value) })
    }

    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.unary(Body::Put { key, value, caps }).await?;
            Ok(())
        })
    }

    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.unary(Body::Del { key, caps }).await?;
            Ok(())
        })
    }

    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async move {
            let answer = self.unary(Body::Append { value, caps }).await?;
            answer
                .key
                .ok_or(Error::Protocol("an append answer without the key it wrote"))
        })
    }

    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        Box::pin(async move {
            let body = Body::Scan(range.to_scan(caps));
            let timeout = self.client.timeout();
            let replies = self
                .client
                .call_stream(Method::SCAN, body.to_bytes(), timeout)
                .await?;
            Ok(Entries::new(RemoteEntries { replies }))
        })
    }
}

/// Scan answers as entries.
struct RemoteEntries {
    replies: Replies,
}

impl Stream for RemoteEntries {
    type Item = Result<Entry, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.replies).poll_next(cx).map(|answer| {
            answer.map(|answer| {
                answer.map(|answer| Entry {
                    key: answer.key.unwrap_or_default(),
                    value: answer.value.unwrap_or_default(),
                })
            })
        })
    }
}

/// The client for the store port `id` on `lane` of `peer`. Cached per
/// `id::lane`: every call from every clone shares one lane.
pub fn connect_store_port(peer: &Peer, id: impl Into<Bytes>, lane: &str) -> RemoteStore {
    RemoteStore::new(peer.connect_rpc_lane(id, lane))
}

/// Serves `port` as the store port `id` on `lane` of `peer`, accepting
/// every caps token. See [`StoreServer`] to check them.
pub fn expose_store_port<P: StorePort + 'static>(
    peer: &Peer,
    id: impl Into<Bytes>,
    lane: &str,
    port: P,
) -> Serving {
    StoreServer::new(port).expose(peer, id, lane)
}

/// Decides whether a call's caps token allows `method`.
pub type CapsCheck = Arc<dyn Fn(Method, &[u8]) -> bool + Send + Sync>;

/// A store port ready to serve, with an optional caps check.
pub struct StoreServer<P> {
    port: Arc<P>,
    caps: Option<CapsCheck>,
}

impl<P: StorePort + 'static> StoreServer<P> {
    /// Serves `port`.
    pub fn new(port: P) -> StoreServer<P> {
        StoreServer {
            port: Arc::new(port),
            caps: None,
        }
    }

    /// Answers calls whose caps token `check` refuses with
    /// `CapabilityDenied`, without calling the port.
    pub fn check_caps(
        mut self,
        check: impl Fn(Method, &[u8]) -> bool + Send + Sync + 'static,
    ) -> StoreServer<P> {
        self.caps = Some(Arc::new(check));
        self
    }

    /// Starts serving on `lane` of `peer` under `id`; stops when the
    /// returned handle drops.
    pub fn expose(self, peer: &Peer, id: impl Into<Bytes>, lane: &str) -> Serving {
        peer.listen_rpc_lane(id, lane).serve(self)
    }
}

impl<P> std::fmt::Debug for StoreServer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreServer")
            .field("checks_caps", &self.caps.is_some())
            .finish()
    }
}

impl<P: StorePort + 'static> Service for StoreServer<P> {
    fn call(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send>> {
        let port = self.port.clone();
        let allowed = self
            .caps
            .as_ref()
            .is_none_or(|check| check(request.method, caps_of(&request.body)));
        Box::pin(async move {
            if !allowed {
                return Response::Unary(Envelope::err("CapabilityDenied", "capability denied"));
            }
            let unary = match request.body {
                Body::Get { key, caps } => port
                    .get(key, caps)
                    .await
                    .map(|value| Envelope::Ok { value, key: None }),
                Body::Put { key, value, caps } => {
                    port.put(key, value, caps).await.map(|()| Envelope::OK)
                }
                Body::Del { key, caps } => port.del(key, caps).await.map(|()| Envelope::OK),
                Body::Append { value, caps } => {
                    port.append(value, caps).await.map(|key| Envelope::Ok {
                        value: None,
                        key: Some(key),
                    })
                }
                Body::Scan(scan) => {
                    let caps = scan.caps.clone();
                    return match port.scan(Range::from(scan), caps).await {
                        Ok(entries) => Response::Stream(Box::pin(EntryEnvelopes { entries })),
                        Err(e) => Response::Unary(error_envelope(&e)),
                    };
                }
            };
            Response::Unary(unary.unwrap_or_else(|e| error_envelope(&e)))
        })
    }
}

/// Scan entries as ok envelopes carrying value and key, as neonplex sends them.
struct EntryEnvelopes {
    entries: Entries,
}

impl Stream for EntryEnvelopes {
    type Item = Envelope;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        Pin::new(&mut self.entries).poll_next(cx).map(|entry| {
            entry.map(|entry| match entry {
                Ok(Entry { key, value }) => Envelope::Ok {
                    value: Some(value),
                    key: Some(key),
                },
                Err(e) => error_envelope(&e),
            })
        })
    }
}

fn caps_of(body: &Body) -> &[u8] {
    match body {
        Body::Get { caps, .. }
        | Body::Del { caps, .. }
        | Body::Put { caps, .. }
        | Body::Append { caps, .. } => caps,
        Body::Scan(scan) => &scan.caps,
    }
}

fn error_envelope(e: &Error) -> Envelope {
    let message = match e {
        Error::Failed { message, .. } => message.clone(),
        other => other.to_string(),
    };
    Envelope::err(e.code().as_str(), &message)
}

/// A store port whose every call carries `caps` (neonplex's `withStoreCaps`).
#[derive(Debug, Clone)]
pub struct WithCaps<P> {
    port: P,
    caps: Caps,
}

/// Wraps `port` so that every call carries the token `caps`, whatever
/// the caller passes.
pub fn with_caps<P: StorePort>(port: P, caps: impl Into<Caps>) -> WithCaps<P> {
    WithCaps {
        port,
        caps: caps.into(),
    }
}

impl<P: StorePort> StorePort for WithCaps<P> {
    fn get(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        self.port.get(key, self.caps.clone())
    }
    fn put(&self, key: Bytes, value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.port.put(key, value, self.caps.clone())
    }
    fn del(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.port.del(key, self.caps.clone())
    }
    fn append(&self, value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        self.port.append(value, self.caps.clone())
    }
    fn scan(&self, range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        self.port.scan(range, self.caps.clone())
    }
}
