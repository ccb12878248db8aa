//! gRPC (tonic): a `bench.Store` service with unary `Get` and `Put`, its
//! messages and both sides written by hand as tonic-build would generate
//! them, served with `Server::builder()` and called over one `Channel`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::uri::PathAndQuery;
use plex_peer::{MemoryStore, StorePort};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::{Body as HttpBody, BoxFuture, GrpcMethod, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use super::workload::StoreClient;
use super::Result;

/// The service's protobuf name.
const SERVICE: &str = "bench.Store";
const GET_PATH: &str = "/bench.Store/Get";
const PUT_PATH: &str = "/bench.Store/Put";

/// `message GetRequest { bytes key = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub(crate) key: Bytes,
}

/// `message GetReply { optional bytes value = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetReply {
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub(crate) value: Option<Bytes>,
}

/// `message PutRequest { bytes key = 1; bytes value = 2; }`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub(crate) key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub(crate) value: Bytes,
}

/// `message PutReply {}`
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PutReply {}

/// A gRPC client of a `bench.Store` served in this process.
#[derive(Clone)]
pub(crate) struct TonicStore {
    grpc: tonic::client::Grpc<Channel>,
}

impl StoreClient for TonicStore {
    const NAME: &'static str = "tonic";

    async fn start(store: MemoryStore) -> Result<TonicStore> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let router = Server::builder().add_service(StoreServer { store });
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                eprintln!("rpc: tonic server: {e}");
            }
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(TonicStore {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    async fn get(&mut self, key: Bytes) -> Result<Option<Bytes>> {
        let reply: GetReply = self.unary(GET_PATH, "Get", GetRequest { key }).await?;
        Ok(reply.value)
    }

    async fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        let PutReply {} = self
            .unary(PUT_PATH, "Put", PutRequest { key, value })
            .await?;
        Ok(())
    }
}

impl TonicStore {
    /// A unary call, as a generated client method makes it.
    async fn unary<Q, A>(
        &mut self,
        path: &'static str,
        method: &'static str,
        request: Q,
    ) -> Result<A>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("Service was not ready: {e}")))?;
        let mut request = Request::new(request);
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, method));
        let codec = ProstCodec::<Q, A>::default();
        let reply = self
            .grpc
            .unary(request, PathAndQuery::from_static(path), codec)
            .await?;
        Ok(reply.into_inner())
    }
}

/// The server side of `bench.Store`, routing by path as a generated
/// `StoreServer` does.
#[derive(Clone)]
struct StoreServer {
    store: MemoryStore,
}

impl NamedService for StoreServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for StoreServer
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let store = self.store.clone();
        match request.uri().path() {
            GET_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<GetReply, GetRequest>::default());
                Ok(grpc.unary(GetService(store), request).await)
            }),
            PUT_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<PutReply, PutRequest>::default());
                Ok(grpc.unary(PutService(store), request).await)
            }),
            _ => Box::pin(async move { Ok(Status::new(Code::Unimplemented, "").into_http()) }),
        }
    }
}

struct GetService(MemoryStore);

impl UnaryService<GetRequest> for GetService {
    type Response = GetReply;
    type Future = BoxFuture<Response<GetReply>, Status>;

    fn call(&mut self, request: Request<GetRequest>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            let GetRequest { key } = request.into_inner();
            let value = store.get(key, Bytes::new()).await.map_err(internal)?;
            Ok(Response::new(GetReply { value }))
        })
    }
}

struct PutService(MemoryStore);

impl UnaryService<PutRequest> for PutService {
    type Response = PutReply;
    type Future = BoxFuture<Response<PutReply>, Status>;

    fn call(&mut self, request: Request<PutRequest>) -> Self::Future {
        let store = self.0.clone();
        Box::pin(async move {
            let PutRequest { key, value } = request.into_inner();
            store
                .put(key, value, Bytes::new())
                .await
                .map_err(internal)?;
            Ok(Response::new(PutReply {}))
        })
    }
}

fn internal(e: plex_peer::Error) -> Status {
    Status::internal(e.to_string())
}
