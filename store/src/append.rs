//! The write path: placement, eviction, frame copy and publication.
//! See `FORMAT.md` §5.

use std::ops::Range;
use std::sync::atomic::{fence, Ordering};

use crate::error::{Error, Result};
use crate::failpoint;
use crate::frame::{self, WRAP_MAGIC};
use crate::header;
use crate::message::{now_ns, time_from_ns, BatchReceipt, Receipt};
use crate::notify;
use crate::pool::{Durability, Pool, WriterGuard};
use crate::recover::State;
use crate::ring::{self, Ring};
use crate::walk::{Step, Walk};
use crate::Seq;

/// What [`Pool::try_append_batch_receipt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAppend {
    /// The batch is published: its seqs and stored time.
    Appended(BatchReceipt),
    /// The writer lock is held by another thread or process: nothing was
    /// appended.
    WouldBlock,
}

impl Pool {
    /// Appends one message and returns its seq.
    ///
    /// With [`Durability::Flush`] it returns only after the message is on
    /// stable storage. Fails with [`Error::Usage`] if the message is larger
    /// than [`crate::Info::max_frame`] or a tag exceeds 65535 bytes, and
    /// with [`Error::ReadOnly`] through a read-only handle.
    pub fn append(&self, tags: &[&str], data: &[u8]) -> Result<Seq> {
        Ok(self.append_receipt(tags, data)?.seq)
    }

    /// Appends one message like [`Pool::append`], and returns its seq with
    /// the time stored in it (what reads of it return as
    /// [`crate::Message::time`]).
    pub fn append_receipt(&self, tags: &[&str], data: &[u8]) -> Result<Receipt> {
        let batch = self.append_batch_receipt(&[(tags, data)])?;
        Ok(Receipt {
            seq: batch.seqs.start,
            time: batch.time,
        })
    }

    /// Appends messages with consecutive seqs, published together: readers
    /// see all of them or none. Returns their seqs as `first..last + 1`
    /// (empty for an empty batch). With [`Durability::Flush`] the whole
    /// batch takes one sync. Fails without appending anything if any
    /// message fails [`Pool::check_message`].
    pub fn append_batch(&self, batch: &[(&[&str], &[u8])]) -> Result<Range<Seq>> {
        Ok(self.append_batch_receipt(batch)?.seqs)
    }

    /// Appends a batch like [`Pool::append_batch`], and returns its seqs
    /// with the time stored in all of its messages.
    pub fn append_batch_receipt(&self, batch: &[(&[&str], &[u8])]) -> Result<BatchReceipt> {
        self.append_batch_receipt_with(batch, self.options.durability)
    }

    /// Appends one message like [`Pool::append_receipt`], acknowledged as
    /// `durability` says rather than as the handle's
    /// [`crate::Options::durability`]: for servers whose clients choose per
    /// append.
    pub fn append_receipt_with(
        &self,
        tags: &[&str],
        data: &[u8],
        durability: Durability,
    ) -> Result<Receipt> {
        let batch = self.append_batch_receipt_with(&[(tags, data)], durability)?;
        Ok(Receipt {
            seq: batch.seqs.start,
            time: batch.time,
        })
    }

    /// Returns once every message published so far, by any process, is on
    /// stable storage, with the newest seq that covers (0 for an empty
    /// pool). Shares syncs with concurrent [`Durability::Flush`] appenders.
    /// Fails with [`Error::SyncFailed`] once a sync of the pool failed, and
    /// with [`Error::ReadOnly`] through a read-only handle.
    pub fn sync(&self) -> Result<Seq> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        let newest = self.load(header::NEWEST, Ordering::Acquire);
        self.sync_through(newest)?;
        Ok(Seq(newest))
    }

    /// The body of every append: `durability` decides the acknowledgement.
    fn append_batch_receipt_with(
        &self,
        batch: &[(&[&str], &[u8])],
        durability: Durability,
    ) -> Result<BatchReceipt> {
        self.check_batch(batch, durability)?;
        let time_ns = now_ns();
        let seqs = {
            let mut guard = self.lock()?;
            self.append_locked(&mut guard, batch, time_ns)?
        };
        self.published(&seqs);
        if durability == Durability::Flush && !seqs.is_empty() {
            self.sync_through(seqs.end.0 - 1)?;
        }
        Ok(BatchReceipt {
            seqs,
            time: time_from_ns(time_ns),
        })
    }

    /// Appends a batch like [`Pool::append_batch_receipt`] if the writer
    /// lock is free right now, and returns [`TryAppend::WouldBlock`]
    /// without appending anything if another thread or process holds it:
    /// for async code, which can then append from a thread allowed to
    /// block. It never syncs: the batch is acknowledged as with
    /// [`Durability::Fast`] whatever the handle's
    /// [`crate::Options::durability`]; [`Pool::sync`] after it makes it
    /// durable. Fails as [`Pool::append_batch`] does.
    pub fn try_append_batch_receipt(&self, batch: &[(&[&str], &[u8])]) -> Result<TryAppend> {
        self.check_batch(batch, Durability::Fast)?;
        let time_ns = now_ns();
        let seqs = {
            let Some(mut guard) = self.try_lock()? else {
                return Ok(TryAppend::WouldBlock);
            };
            self.append_locked(&mut guard, batch, time_ns)?
        };
        self.published(&seqs);
        Ok(TryAppend::Appended(BatchReceipt {
            seqs,
            time: time_from_ns(time_ns),
        }))
    }

    /// Checks that a message with these tags and `data_len` bytes of data
    /// fits this pool, without appending it: the [`Error::Usage`] an append
    /// of it would fail with, if any.
    pub fn check_message(&self, tags: &[&str], data_len: usize) -> Result<()> {
        let max = self.geo.max_frame();
        let len = frame::frame_len(tags, data_len).map_err(Error::Usage)?;
        if len > max {
            return Err(Error::Usage(format!(
                "message of {len} bytes (with its 32-byte header and tags) exceeds \
                 this pool's limit of {max} bytes"
            )));
        }
        Ok(())
    }

    /// What every append checks before taking the lock.
    fn check_batch(&self, batch: &[(&[&str], &[u8])], durability: Durability) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        for (tags, data) in batch {
            self.check_message(tags, data.len())?;
        }
        if durability == Durability::Flush && self.sync_failed() {
            return Err(self.sync_poisoned());
        }
        Ok(())
    }

    /// After the lock is released: wakes the followers of `seqs`, if any,
    /// this handle's async ones first and directly.
    fn published(&self, seqs: &Range<Seq>) {
        if !seqs.is_empty() {
            self.local.wake(seqs.end.0 - 1);
            notify::wake_followers(self);
        }
    }

    /// The body of an append, under the writer lock.
    fn append_locked(
        &self,
        guard: &mut WriterGuard<'_>,
        batch: &[(&[&str], &[u8])],
        time_ns: u64,
    ) -> Result<Range<Seq>> {
        if self.load(header::DIRTY, Ordering::Relaxed) != 0 {
            // The previous holder died mid-append.
            self.repair(guard)?;
        }
        let mut st = self.state(Ordering::Relaxed);
        self.check_state(&st)?;
        let first = Seq(st.newest + 1);
        if batch.is_empty() {
            return Ok(first..first);
        }
        self.store(header::DIRTY, 1, Ordering::Relaxed);
        let ring = self.ring();
        for (tags, data) in batch {
            let seq = st.newest + 1;
            let buf = &mut *guard.buf;
            buf.clear();
            frame::encode(buf, seq, time_ns, tags, data);
            let len = buf.len() as u64;
            let (pos, marker) = self.make_room(&mut st, len)?;
            failpoint::hit("before_frame");
            if let Some(at) = marker {
                self.store_ring(at, u64::from(WRAP_MAGIC));
            }
            let (front, back) = buf.split_at(buf.len() / 16 * 8);
            self.map.store_bytes(self.geo.ring_off + pos, front);
            failpoint::hit("mid_payload");
            let back_at = pos + front.len() as u64;
            self.map.store_bytes(self.geo.ring_off + back_at, back);
            let fine = self.geo.fine_slot(seq);
            self.store(fine + 8, pos, Ordering::Relaxed);
            self.store(fine, seq, Ordering::Relaxed);
            if seq % header::COARSE_STRIDE == 0 {
                let coarse = self.geo.coarse_slot(seq);
                self.store(coarse + 8, pos, Ordering::Relaxed);
                self.store(coarse, seq, Ordering::Relaxed);
            }
            st.head = pos + len;
            st.newest = seq;
            debug_assert!(ring.len() >= st.head);
        }
        failpoint::hit("before_publish");
        self.store(header::HEAD, st.head, Ordering::Relaxed);
        // The commit point: everything above happens-before any reader that
        // loads this value with acquire.
        self.store(header::NEWEST, st.newest, Ordering::Release);
        failpoint::hit("after_publish");
        self.store(header::DIRTY, 0, Ordering::Release);
        Ok(first..Seq(st.newest + 1))
    }

    /// Frees `len` contiguous bytes at the head, evicting the oldest frames.
    /// Returns where the frame goes and, when it wraps, where the wrap
    /// marker goes. `OLDEST` and `TAIL` are stored before a release fence
    /// that precedes every overwrite (`FORMAT.md` §5.3).
    fn make_room(&self, st: &mut State, len: u64) -> Result<(u64, Option<u64>)> {
        let ring = self.ring();
        let ring_len = ring.len();
        let max = self.geo.max_frame();
        let mut buf = Vec::with_capacity(frame::FRAME_HEADER as usize);
        // Each step evicts a frame or follows a wrap, so this bounds a loop
        // over a corrupt chain.
        let mut steps = 2 * (ring_len / frame::FRAME_HEADER) + 4;
        let placed = loop {
            if st.is_empty() {
                let pos = if st.head + len <= ring_len {
                    st.head
                } else {
                    0
                };
                st.tail = pos;
                self.store(header::TAIL, pos, Ordering::Relaxed);
                break (pos, None);
            }
            let wraps = st.head + len > ring_len;
            let needed = if wraps { ring_len - st.head + len } else { len };
            let free = match st.tail.cmp(&st.head) {
                std::cmp::Ordering::Greater => st.tail - st.head,
                std::cmp::Ordering::Less => ring_len - st.head + st.tail,
                std::cmp::Ordering::Equal => 0,
            };
            if free >= needed {
                let marker = (wraps && st.head < ring_len).then_some(st.head);
                break (if wraps { 0 } else { st.head }, marker);
            }
            steps = steps
                .checked_sub(1)
                .ok_or_else(|| self.corrupt_state("eviction loops"))?;
            let pos = ring::resolve(&ring, st.tail)
                .map_err(|e| self.corrupt(self.geo.ring_off + st.tail, e))?;
            if pos != st.tail {
                st.tail = pos;
                self.store(header::TAIL, pos, Ordering::Relaxed);
                continue;
            }
            // Only lengths are needed; the checksum protects readers.
            match ring::load(&ring, pos, max, u64::MAX, &mut buf) {
                Ok(head) if head.seq == st.oldest => {
                    st.oldest += 1;
                    st.tail = pos + head.padded_len();
                }
                _ => {
                    // A damaged frame: evict through to the next valid one
                    // (or everything), the seqs in between with it.
                    let mut walk = Walk::new(st, ring_len);
                    match walk.step(&ring, max, u64::MAX, &mut buf) {
                        Some(Step::Damaged { seqs, .. }) if seqs.end <= st.newest => {
                            st.oldest = seqs.end;
                            st.tail = match walk.step(&ring, max, u64::MAX, &mut buf) {
                                Some(Step::Frame { pos, .. }) => pos,
                                _ => return Err(self.corrupt_state("eviction lost the chain")),
                            };
                        }
                        Some(Step::Frame { seq, pos, .. }) if seq >= st.oldest => {
                            st.oldest = seq;
                            st.tail = pos;
                        }
                        _ => {
                            st.oldest = st.newest + 1;
                            st.tail = st.head;
                        }
                    }
                }
            }
            // OLDEST first: a crash before TAIL leaves a tail one frame
            // behind, which recovery skips.
            self.store(header::OLDEST, st.oldest, Ordering::Relaxed);
            self.store(header::TAIL, st.tail, Ordering::Relaxed);
        };
        fence(Ordering::Release);
        Ok(placed)
    }

    /// Refuses to write through a published state that is out of bounds.
    fn check_state(&self, st: &State) -> Result<()> {
        if st.in_bounds(self.geo.ring_len) {
            Ok(())
        } else {
            Err(self.corrupt_state("published state out of bounds"))
        }
    }

    /// A corruption error pointing at the published state.
    fn corrupt_state(&self, reason: &'static str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            at: crate::Location::Offset(header::HEAD),
            reason,
        }
    }

    /// Stores a little-endian word at ring offset `off`.
    fn store_ring(&self, off: u64, value: u64) {
        self.map
            .u64_mut(self.geo.ring_off + off)
            .store(value.to_le(), Ordering::Relaxed);
    }
}
