//! In-process following: a blocked cursor and an async `Notifier` are both
//! woken by appends from another thread, with no sleeps.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use plex_store::{Error, Notifier, Options, Pool, Seq, Start};

/// A waker that records whether it was woken and unparks a thread.
struct Flag {
    woken: AtomicBool,
    thread: std::thread::Thread,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn pool(dir: &tempfile::TempDir, options: Options) -> Arc<Pool> {
    Arc::new(Pool::create(dir.path().join("f.pool"), 1 << 16, options).unwrap())
}

#[test]
fn blocked_cursor_wakes_on_append_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    // A one-minute fallback poll: only the futex can wake it promptly.
    let pool = pool(&dir, Options::new().poll_interval(Duration::from_secs(60)));
    let reader = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let mut cursor = pool.cursor(Start::End);
            let msg = cursor.next_timeout(Duration::from_secs(60)).unwrap();
            msg.map(|m| (m.seq, m.data))
        })
    };
    while pool.info().waiters == 0 {
        std::thread::yield_now();
    }
    pool.append(&[], b"ping").unwrap();
    assert_eq!(reader.join().unwrap(), Some((Seq(1), b"ping".to_vec())));
}

#[test]
fn next_timeout_returns_none_when_nothing_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, Options::new());
    let mut cursor = pool.cursor(Start::End);
    assert_eq!(cursor.next_timeout(Duration::ZERO).unwrap(), None);
    assert!(!pool.wait_for(Seq(1), Duration::from_millis(1)));
    assert_eq!(pool.info().waiters, 0);
}

#[test]
fn notifier_wakes_a_pending_future() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, Options::new().poll_interval(Duration::from_secs(60)));
    let notifier = Notifier::new(pool.clone()).unwrap();
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(notifier.wait_for(Seq(1)));
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    // The helper thread registers on the futex only while a future waits.
    while pool.info().waiters == 0 {
        std::thread::yield_now();
    }
    let writer = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.append(&[], b"x").unwrap())
    };
    while !flag.woken.load(Ordering::SeqCst) {
        std::thread::park();
    }
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(()));
    assert_eq!(writer.join().unwrap(), Seq(1));
    // Already satisfied: ready at once, nothing registered.
    assert_eq!(
        pin!(notifier.wait_for(Seq(1))).poll(&mut cx),
        Poll::Ready(())
    );
    drop(fut);
    drop(notifier);
    assert_eq!(pool.info().waiters, 0);
}

/// An append through the notifier's own handle wakes its futures before
/// it returns, without the helper thread; one through another handle of
/// the pool still wakes them, through the futex.
#[test]
fn notifier_is_woken_by_its_own_handle_directly() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(&dir, Options::new().poll_interval(Duration::from_secs(60)));
    let notifier = Notifier::new(pool.clone()).unwrap();
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(notifier.wait_for(Seq(2)));
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    pool.append(&[], b"one").unwrap();
    assert!(!flag.woken.load(Ordering::SeqCst), "seq 2 is not there yet");
    pool.append(&[], b"two").unwrap();
    assert!(flag.woken.load(Ordering::SeqCst));
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(()));

    flag.woken.store(false, Ordering::SeqCst);
    let mut fut = Box::pin(notifier.wait_for(Seq(3)));
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Pending);
    let other = Pool::open(pool.path()).unwrap();
    while pool.info().waiters == 0 {
        std::thread::yield_now();
    }
    other.append(&[], b"three").unwrap();
    while !flag.woken.load(Ordering::SeqCst) {
        std::thread::park();
    }
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(()));
}

#[test]
fn lagging_cursor_gets_exact_gap_then_continues() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("g.pool"), 8192 + 4096, Options::new()).unwrap();
    let mut cursor = pool.cursor(Start::Oldest);
    for i in 0..200u32 {
        pool.append(&[], &i.to_le_bytes()).unwrap();
    }
    let oldest = pool.info().oldest;
    assert!(oldest > Seq(1));
    match cursor.try_next() {
        Err(Error::RetentionGap { lost }) => assert_eq!(lost, Seq(1)..oldest),
        other => panic!("expected a gap, got {other:?}"),
    }
    let msg = cursor.try_next().unwrap().unwrap();
    assert_eq!(msg.seq, oldest);
    assert_eq!(msg.data, ((oldest.0 - 1) as u32).to_le_bytes());
}

#[test]
fn flush_appends_from_many_threads_share_syncs_and_are_synced() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(
        &dir,
        Options::new().durability(plex_store::Durability::Flush),
    );
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..10u8 {
                    let seq = pool.append(&[], &[t, i]).unwrap();
                    // Acknowledged means recorded as synced.
                    assert!(pool.info().synced >= seq);
                }
            });
        }
    });
    assert_eq!(pool.info().newest, Seq(40));
    assert_eq!(pool.info().synced, Seq(40));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.pool");
    let kind = |r: Result<Pool, Error>| r.unwrap_err().kind();
    assert_eq!(
        kind(Pool::create(&path, 1000, Options::new())),
        plex_store::ErrorKind::Usage
    );
    assert_eq!(
        kind(Pool::create(&path, 4096, Options::new())),
        plex_store::ErrorKind::Usage
    );
    assert_eq!(kind(Pool::open(&path)), plex_store::ErrorKind::NotFound);
    let pool = Pool::create(&path, 3 * 4096, Options::new()).unwrap();
    assert_eq!(
        kind(Pool::create(&path, 3 * 4096, Options::new())),
        plex_store::ErrorKind::AlreadyExists
    );
    let big = vec![0u8; pool.info().max_frame as usize];
    assert_eq!(
        pool.append(&[], &big).unwrap_err().kind(),
        plex_store::ErrorKind::Usage
    );
    let long_tag = "t".repeat(70_000);
    assert_eq!(
        pool.append(&[&long_tag], b"").unwrap_err().kind(),
        plex_store::ErrorKind::Usage
    );
    assert_eq!(
        pool.get(Seq(0)).unwrap_err().kind(),
        plex_store::ErrorKind::NotFound
    );
    assert_eq!(pool.append_batch(&[]).unwrap(), Seq(1)..Seq(1));
    // Not a pool at all.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    assert_eq!(kind(Pool::open(&junk)), plex_store::ErrorKind::Corrupt);
}
