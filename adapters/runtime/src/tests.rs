//! Waiter bookkeeping, checked on a session whose connection task never
//! runs: each future's waker is counted without any network or timing.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::{Config, OpenOptions, Role};

use crate::{
    BoxFuture, BoxIo, BoxResult, Endpoint, Manager, ManagerConfig, Runtime, Session, Sleep,
    Transport, TransportListener,
};

/// A runtime that never runs what it is given: the driver stays idle.
struct Frozen;

impl Runtime for Frozen {
    fn spawn(&self, _future: BoxFuture) {}

    fn sleep_until(&self, _deadline: Instant) -> Sleep {
        Box::pin(std::future::pending())
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A transport that never has anything to say.
struct Silent;

impl AsyncRead for Silent {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
}

impl AsyncWrite for Silent {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

fn session() -> Session {
    Session::new(Silent, Role::Client, Config::default(), Arc::new(Frozen)).unwrap()
}

const POLLS: usize = 100_000;

/// Polls `future` many times; it must stay pending.
fn poll_often<F: Future>(future: Pin<&mut F>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = future;
    for _ in 0..POLLS {
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }
}

#[test]
fn a_future_polled_many_times_holds_one_waker_until_dropped() {
    let s = session();
    let closed = s.closed();
    let mut closed = pin!(closed);
    poll_often(closed.as_mut());
    assert_eq!(s.conn().lock().close_waiters.len(), 1);

    let accept = s.accept_incoming();
    let mut accept = pin!(accept);
    poll_often(accept.as_mut());
    assert_eq!(s.conn().lock().accept.waiters.len(), 1);

    let ping = s.ping();
    let mut ping = pin!(ping);
    poll_often(ping.as_mut());
    assert_eq!(s.conn().lock().pong_waiters.len(), 1);
}

#[test]
fn dropped_futures_leave_their_waiter_sets() {
    let s = session();
    // Fill the peer's default stream limit (100) so the next open waits.
    let streams: Vec<_> = (0..100)
        .map(|_| {
            let open = pin!(s.open_stream(OpenOptions::default()));
            let mut cx = Context::from_waker(Waker::noop());
            match open.poll(&mut cx) {
                Poll::Ready(stream) => stream.unwrap(),
                Poll::Pending => panic!("open waited below the limit"),
            }
        })
        .collect();
    {
        let open = pin!(s.open_stream(OpenOptions::default()));
        poll_often(open);
        assert_eq!(s.conn().lock().openers.len(), 1);
    }
    assert_eq!(s.conn().lock().openers.len(), 0);
    {
        let closed = pin!(s.closed());
        poll_often(closed);
    }
    assert_eq!(s.conn().lock().close_waiters.len(), 0);
    drop(streams);
}

#[test]
fn every_task_waiting_to_accept_is_registered() {
    let s = session();
    let clone = s.clone();
    let (a, b) = (s.accept_incoming(), clone.accept_incoming());
    let (mut a, mut b) = (pin!(a), pin!(b));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(a.as_mut().poll(&mut cx).is_pending());
    assert!(b.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.conn().lock().accept.waiters.len(), 2);
}

#[test]
fn accept_stream_skips_a_queued_stream_the_session_no_longer_knows() {
    // What a reset racing `accept_stream` leaves: a queued stream that the
    // session already forgot.
    let s = session();
    s.conn()
        .lock()
        .accept
        .queue
        .push_back(crate::conn::Pending {
            stream: plex_proto::StreamId::new(2),
            protocol: bytes::Bytes::new(),
            id: bytes::Bytes::new(),
            handshake: bytes::Bytes::new(),
        });
    let accept = pin!(s.accept_stream());
    let mut cx = Context::from_waker(Waker::noop());
    if let Poll::Ready(result) = accept.poll(&mut cx) {
        panic!("accept_stream ended: {result:?}");
    }
    assert!(s.conn().lock().accept.queue.is_empty());
}

/// Dials [`Silent`] connections; listens nowhere.
struct SilentTransport;

impl Transport for SilentTransport {
    fn dial<'a>(&'a self, _endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        Box::pin(async { Ok(Box::new(Silent) as BoxIo) })
    }

    fn listen<'a>(&'a self, _endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        Box::pin(async { Err(io::Error::from(io::ErrorKind::Unsupported).into()) })
    }
}

#[test]
fn a_manager_wait_polled_many_times_holds_one_waker_until_dropped() {
    const URL: &str = "tcp://127.0.0.1:1";
    let config = ManagerConfig {
        max_connections: 1,
        max_streams_per_connection: 1,
        ..ManagerConfig::default()
    };
    let manager = Manager::new(Arc::new(SilentTransport), Arc::new(Frozen), config);
    let mut cx = Context::from_waker(Waker::noop());
    // The only slot: dialled and opened locally, without the network.
    let first = match pin!(manager.get_stream(URL)).poll(&mut cx) {
        Poll::Ready(stream) => stream.unwrap(),
        Poll::Pending => panic!("the first stream waited"),
    };
    {
        let second = pin!(manager.get_stream(URL));
        poll_often(second);
        assert_eq!(manager.waiting(URL), 1);
    }
    assert_eq!(manager.waiting(URL), 0);
    drop(first);
}

/// A runtime that keeps what it is given, for the test to poll by hand.
#[derive(Default)]
struct Kept(std::sync::Mutex<Vec<BoxFuture>>);

impl Kept {
    /// The one task spawned: the connection task.
    fn driver(&self) -> BoxFuture {
        let mut spawned = self.0.lock().unwrap();
        assert_eq!(spawned.len(), 1, "one connection task");
        spawned.pop().unwrap()
    }
}

impl Runtime for Kept {
    fn spawn(&self, future: BoxFuture) {
        self.0.lock().unwrap().push(future);
    }

    fn sleep_until(&self, _deadline: Instant) -> Sleep {
        Box::pin(std::future::pending())
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// What a [`Scripted`] transport reads, what it was given, and how it
/// fails.
#[derive(Default)]
struct Script {
    /// Chunks to read, in order; `None` answers one read with `Pending`.
    input: std::collections::VecDeque<Option<Vec<u8>>>,
    /// Once `input` is empty: the peer has closed its side.
    eof: bool,
    written: Vec<u8>,
    /// Writes fail with a broken pipe.
    write_fails: bool,
    /// The write side was closed.
    shut: bool,
}

/// A transport that plays a [`Script`] the test holds a handle to.
#[derive(Clone, Default)]
struct Scripted(Arc<std::sync::Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap()
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut script = self.script();
        match script.input.pop_front() {
            Some(Some(chunk)) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Poll::Ready(Ok(chunk.len()))
            }
            Some(None) => Poll::Pending,
            None if script.eof => Poll::Ready(Ok(0)),
            None => Poll::Pending,
        }
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut script = self.script();
        if script.write_fails {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        script.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.script().shut = true;
        Poll::Ready(Ok(()))
    }
}

/// The reason `session` closed with; it must have closed.
fn close_reason(session: &Session) -> plex_proto::CloseReason {
    let closed = pin!(session.closed());
    match closed.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(reason) => reason,
        Poll::Pending => panic!("the session is still open"),
    }
}

#[test]
fn a_closed_connection_reads_until_the_peer_closes_its_side() {
    // Dropping a socket with unread bytes makes the kernel reset the
    // connection, and the reset can destroy the final frames before the
    // peer reads them: the close is made in stages instead.
    let (io, runtime) = (Scripted::default(), Arc::new(Kept::default()));
    let s = Session::new(io.clone(), Role::Client, Config::default(), runtime.clone()).unwrap();
    let mut driver = runtime.driver();
    let mut cx = Context::from_waker(Waker::noop());
    s.go_away(plex_proto::ErrorCode::INTERNAL_ERROR).unwrap();
    assert!(driver.as_mut().poll(&mut cx).is_pending());
    assert!(io.script().shut, "the write side is closed");
    assert!(!io.script().written.is_empty(), "the GOAWAY was written");
    // What the peer still sends is read and dropped: the task stays.
    io.script().input.push_back(Some(b"late bytes".to_vec()));
    assert!(driver.as_mut().poll(&mut cx).is_pending());
    assert!(io.script().input.is_empty(), "the late bytes were read");
    // The peer closes its side: the task ends and drops the transport.
    io.script().eof = true;
    assert!(driver.as_mut().poll(&mut cx).is_ready());
    assert_eq!(
        close_reason(&s),
        plex_proto::CloseReason::Local(plex_proto::ErrorCode::INTERNAL_ERROR)
    );
}

#[test]
fn frames_that_arrived_before_a_write_failed_are_acted_on() {
    // The peer sent a GOAWAY with its reason and went. The write that
    // finds it gone fails before the GOAWAY is read: the session must still
    // close with the peer's reason, not a bare transport failure.
    let now = Instant::now();
    let mut peer = plex_proto::Session::new(Role::Client, Config::default(), now).unwrap();
    peer.go_away(plex_proto::ErrorCode::CANCEL).unwrap();
    let mut bytes = Vec::new();
    while let Some(t) = peer.poll_transmit(now) {
        bytes.extend_from_slice(&t.head);
        bytes.extend_from_slice(&t.payload);
    }
    let (io, runtime) = (Scripted::default(), Arc::new(Kept::default()));
    {
        let mut script = io.script();
        script.write_fails = true;
        // The first read finds nothing; the bytes land before the write.
        script.input.extend([None, Some(bytes)]);
        script.eof = true;
    }
    let s = Session::new(io.clone(), Role::Server, Config::default(), runtime.clone()).unwrap();
    let mut driver = runtime.driver();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10 {
        if driver.as_mut().poll(&mut cx).is_ready() {
            break;
        }
    }
    assert!(io.script().input.is_empty(), "everything was read");
    match close_reason(&s) {
        plex_proto::CloseReason::Remote { code, .. } => {
            assert_eq!(code, plex_proto::ErrorCode::CANCEL)
        }
        other => panic!("closed with {other:?}"),
    }
}
