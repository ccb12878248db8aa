//! An async-friendly wake-up source that ties the crate to no runtime: one
//! helper thread blocks on the pool's futex and wakes registered `Waker`s.
//! Appends through the notifier's own pool handle wake them directly, so
//! followers in the appender's process skip the helper's futex round trip.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::header;
use crate::notify;
use crate::pool::Pool;
use crate::Seq;

/// Wakes async tasks when a pool receives new messages.
///
/// ```no_run
/// # async fn demo(pool: std::sync::Arc<plex_store::Pool>) -> plex_store::Result<()> {
/// use plex_store::{Notifier, Start};
/// let notifier = Notifier::new(pool.clone())?;
/// let mut cursor = pool.cursor(Start::End);
/// loop {
///     while let Some(msg) = cursor.try_next()? {
///         println!("{}: {} bytes", msg.seq, msg.data.len());
///     }
///     notifier.wait_for(cursor.next_seq()).await;
/// }
/// # }
/// ```
///
/// The helper thread registers as a futex waiter only while some future is
/// pending, so an idle notifier costs writers nothing. Appends through the
/// same [`Pool`] handle also wake the futures themselves, without waiting
/// for the helper thread.
#[derive(Debug)]
pub struct Notifier {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A future resolving once the pool's newest seq reaches a target.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitFor<'a> {
    shared: &'a Shared,
    seq: u64,
    id: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    pool: Arc<Pool>,
    inner: Mutex<Inner>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct Inner {
    wakers: BTreeMap<u64, (u64, Waker)>,
    next_id: u64,
    shutdown: bool,
}

impl Notifier {
    /// Starts the helper thread for `pool`.
    pub fn new(pool: Arc<Pool>) -> Result<Notifier> {
        let shared = Arc::new(Shared {
            pool,
            inner: Mutex::default(),
            cond: Condvar::new(),
        });
        shared.pool.local.add(&shared);
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("plex-store-notify".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io(&shared.pool.path, e))?;
        Ok(Notifier {
            shared,
            thread: Some(thread),
        })
    }

    /// Resolves once a message with seq `>= seq` is published.
    pub fn wait_for(&self, seq: Seq) -> WaitFor<'_> {
        WaitFor {
            shared: &self.shared,
            seq: seq.0,
            id: None,
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.cond.notify_all();
        // Breaks the helper out of its futex sleep (other followers see a
        // spurious wake-up and re-check).
        notify::poke(&self.shared.pool.map);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.pool.local.remove(&self.shared);
    }
}

/// The notifiers of a pool handle, which appends through that handle wake
/// directly (`crate::append`). Only a shortcut: the futex wakes them too.
#[derive(Debug, Default)]
pub(crate) struct Local {
    /// Notifiers alive, read without the lock by every append.
    count: AtomicUsize,
    notifiers: Mutex<Vec<Weak<Shared>>>,
}

impl Local {
    /// Wakes the futures waiting for seqs up to `newest`.
    pub(crate) fn wake(&self, newest: u64) {
        // A notifier being added right now may be missed: the futex
        // wakes it.
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let live: Vec<Arc<Shared>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        for shared in live {
            shared.wake_ready(newest);
        }
    }

    fn add(&self, shared: &Arc<Shared>) {
        let mut notifiers = self.lock();
        notifiers.push(Arc::downgrade(shared));
        self.count.store(notifiers.len(), Ordering::Relaxed);
    }

    fn remove(&self, shared: &Arc<Shared>) {
        let mut notifiers = self.lock();
        notifiers.retain(|n| !std::ptr::eq(n.as_ptr(), Arc::as_ptr(shared)));
        self.count.store(notifiers.len(), Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Weak<Shared>>> {
        self.notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Future for WaitFor<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.shared.newest() >= this.seq {
            if let Some(id) = this.id.take() {
                this.shared.lock().wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        let mut inner = this.shared.lock();
        let id = *this.id.get_or_insert_with(|| {
            inner.next_id += 1;
            inner.next_id
        });
        inner.wakers.insert(id, (this.seq, cx.waker().clone()));
        drop(inner);
        this.shared.cond.notify_all();
        // Re-check after registering: an append in between has no waker to
        // wake yet.
        if this.shared.newest() >= this.seq {
            if let Some(id) = this.id.take() {
                this.shared.lock().wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for WaitFor<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.shared.lock().wakers.remove(&id);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn newest(&self) -> u64 {
        self.pool.load(header::NEWEST, Ordering::Acquire)
    }

    /// The helper thread: sleeps on the condvar while nothing is pending,
    /// on the futex while something is.
    fn run(&self) {
        loop {
            let mut inner = self.lock();
            while inner.wakers.is_empty() && !inner.shutdown {
                inner = self
                    .cond
                    .wait(inner)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if inner.shutdown {
                return;
            }
            drop(inner);
            let newest = self.newest();
            notify::wait_once(&self.pool, newest + 1, self.pool.options.poll_interval);
            self.wake_ready(self.newest());
        }
    }

    /// Wakes the futures waiting for seqs up to `newest`, outside the lock.
    fn wake_ready(&self, newest: u64) {
        let mut ready = Vec::new();
        self.lock().wakers.retain(|_, (seq, waker)| {
            let done = *seq <= newest;
            if done {
                ready.push(waker.clone());
            }
            !done
        });
        ready.into_iter().for_each(Waker::wake);
    }
}
