//! A server on a free loopback port with its own pool directory, and a
//! small HTTP/1.1 client over hyper's connection API.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use plex_serve::{Config, Limits, ServeError, Server};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server.
pub(crate) struct Harness {
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Harness {
    /// Serves a fresh directory with the default limits.
    pub(crate) async fn start() -> Harness {
        Harness::with_limits(Limits::default()).await
    }

    /// Serves a fresh directory with `limits`.
    pub(crate) async fn with_limits(limits: Limits) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path())
            .addr("127.0.0.1:0".parse().unwrap())
            .limits(limits);
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A new connection.
    pub(crate) async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// One request on a new connection, its body read whole.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.connect().await.call(method, path, body).await
    }

    /// One request with a raw JSON body.
    pub(crate) async fn call_raw(&self, method: Method, path: &str, body: &str) -> Reply {
        let mut client = self.connect().await;
        let mut req = client.request(method, path, None);
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        *req.body_mut() = Full::new(Bytes::from(body.to_owned()));
        client.fetch(req).await
    }

    /// Creates pool `name` of `size` bytes (None: the default).
    pub(crate) async fn create(&self, name: &str, size: Option<u64>) -> Reply {
        let mut body = serde_json::json!({ "pool": name });
        if let Some(size) = size {
            body["size_bytes"] = size.into();
        }
        self.call(Method::POST, "/v0/pools", Some(body)).await
    }

    /// Appends `data` with `tags` to `pool`, expecting success.
    pub(crate) async fn append(&self, pool: &str, data: Value, tags: &[&str]) -> Value {
        let body = serde_json::json!({ "data": data, "tags": tags });
        let reply = self
            .call(
                Method::POST,
                &format!("/v0/pools/{pool}/append"),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["message"].clone()
    }

    /// Stops the server and waits for it.
    pub(crate) async fn stop(mut self) -> Result<(), ServeError> {
        self.begin_stop();
        self.join().await
    }

    /// Signals shutdown without waiting.
    pub(crate) fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server's `run` to return.
    pub(crate) async fn join(&mut self) -> Result<(), ServeError> {
        self.task.take().unwrap().await.unwrap()
    }
}

/// A response read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as JSON Lines.
    pub(crate) fn lines(&self) -> Vec<Value> {
        assert!(
            self.body.is_empty() || self.body.ends_with(b"\n"),
            "{}",
            self.text()
        );
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Asserts an error envelope of `kind` with `status`; returns its body.
    pub(crate) fn error(&self, status: StatusCode, kind: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.version(), Some("0"));
        let body = self.json();
        assert_eq!(body["error"]["kind"], kind, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        body["error"].clone()
    }

    /// The `plasmite-version` header.
    pub(crate) fn version(&self) -> Option<&str> {
        self.headers
            .get("plasmite-version")
            .and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 connection.
pub(crate) struct Client {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    _conn: JoinHandle<()>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Client {
            addr,
            sender,
            _conn: conn,
        }
    }

    /// A request with a JSON body (or none), the `Host` set to the server.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&v).unwrap())
            }
            None => Bytes::new(),
        };
        req.body(Full::new(body)).unwrap()
    }

    /// Sends `req` and returns the response head with its streaming body.
    pub(crate) async fn send(&mut self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        self.sender.ready().await.unwrap();
        self.sender.send_request(req).await.unwrap()
    }

    /// Sends `req` and reads the whole response.
    pub(crate) async fn fetch(&mut self, req: Request<Full<Bytes>>) -> Reply {
        let response = self.send(req).await;
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    pub(crate) async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let req = self.request(method, path, body);
        self.fetch(req).await
    }
}

/// Reads a streaming body up to and including its next complete line
/// (`buf` keeps what came after it); `None` at the end of the body.
pub(crate) async fn next_line(body: &mut Incoming, buf: &mut Vec<u8>) -> Option<Value> {
    loop {
        if let Some(at) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=at).collect();
            return Some(serde_json::from_slice(&line).unwrap());
        }
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            None => {
                assert!(buf.is_empty(), "partial line at the end: {buf:?}");
                return None;
            }
        }
    }
}
