//! Tests that count the ring words a read or an open loads (through
//! [`crate::ring::WORDS_READ`]), to check the work is bounded as promised
//! rather than timing it.

use std::sync::atomic::Ordering;

use crate::header::{self, Geometry, HEADER_LEN};
use crate::ring::WORDS_READ;
use crate::{Options, Pool, Seq};

/// Ring words the current thread loads while running `f`.
fn words_read<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = WORDS_READ.with(|n| n.get());
    let out = f();
    (out, WORDS_READ.with(|n| n.get()) - before)
}

/// A 1 MiB pool of `options`, wrapped several times with messages of 32
/// data bytes and no tags (64-byte frames: far smaller than the default
/// index assumes, so most held seqs have no slot of their own).
fn small_messages(dir: &std::path::Path, options: Options) -> Pool {
    let pool = Pool::create(dir.join("small.pool"), 1 << 20, options).unwrap();
    for i in 0..60_000u64 {
        pool.append(&[], &[i as u8; 32]).unwrap();
    }
    pool
}

#[test]
fn a_get_reads_one_frame_and_a_few_headers_wherever_the_seq_is() {
    let dir = tempfile::tempdir().unwrap();
    let pool = small_messages(dir.path(), Options::new());
    let info = pool.info();
    // The fine index (one slot per 512 ring bytes) misses most seqs.
    assert!(info.len() > 5 * info.index_slots, "{info:?}");
    // Reading seq s through the coarse index: at most 15 headers of 4 words
    // on the way (from the indexed seq below it, or from the oldest), then
    // the 8 words of its own frame, plus the wrap marker checks.
    let bound = 4 * header::COARSE_STRIDE + 8 + 8;
    let mid = (info.oldest.0 + info.newest.0) / 2;
    for seq in [
        info.oldest.0,
        info.oldest.0 + 20,
        mid,
        mid + 7,
        info.newest.0,
    ] {
        let (msg, words) = words_read(|| pool.get(Seq(seq)).unwrap());
        assert_eq!(msg.data, [seq as u8 - 1; 32]);
        assert!(words <= bound, "get({seq}) loaded {words} ring words");
    }
}

#[test]
fn the_index_is_sized_from_the_message_size() {
    let dir = tempfile::tempdir().unwrap();
    let pool = small_messages(dir.path(), Options::new().message_size(32));
    let info = pool.info();
    // One slot per 64-byte frame plus its 16 bytes.
    assert_eq!(info.index_slots, ((1 << 20) - HEADER_LEN) / 80);
    assert_eq!(
        info.index_slots,
        Geometry::slots_for(1 << 20, 32),
        "the sizing rule"
    );
    assert!(info.len() <= info.index_slots, "{info:?}");
    // Every held seq through its own slot: its frame and a wrap check.
    for seq in info.oldest.0..=info.newest.0 {
        let (msg, words) = words_read(|| pool.get(Seq(seq)).unwrap());
        assert_eq!(msg.seq, Seq(seq));
        assert!(words <= 8 + 1, "get({seq}) loaded {words} ring words");
    }
    // An explicit slot count wins over the message size.
    let other = Pool::create(
        dir.path().join("explicit.pool"),
        1 << 20,
        Options::new().message_size(32).index_slots(100),
    )
    .unwrap();
    assert_eq!(other.info().index_slots, 100);
}

#[test]
fn a_clean_reopen_reads_no_frame_and_a_restart_reads_headers_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.pool");
    let pool = small_messages(dir.path(), Options::new());
    let held = pool.info().len();
    let newest = pool.info().newest.0;
    // As if every frame had been synced (`Durability::Flush`).
    pool.store(header::SYNCED, newest, Ordering::Relaxed);
    drop(pool);

    // The last writer left the state consistent, in this boot: no walk.
    let (pool, words) = words_read(|| Pool::open(&path).unwrap());
    assert_eq!(words, 0, "a clean reopen loaded ring words");
    assert!(!pool.recovery().unwrap().walked);
    assert_eq!(pool.get(Seq(newest)).unwrap().data, [newest as u8 - 1; 32]);

    // Checked in another boot (the machine restarted: power may have been
    // lost): the full walk, frame headers only up to SYNCED (their four
    // words, and the first again to look for a wrap marker).
    pool.store(header::CHECKED, 12345, Ordering::Relaxed);
    drop(pool);
    let (pool, words) = words_read(|| Pool::open(&path).unwrap());
    let rec = pool.recovery().unwrap();
    assert!(rec.walked && rec.is_clean(), "{rec:?}");
    assert!(words >= 4 * held, "{words} words for {held} frames");
    assert!(words <= 5 * held + 64, "{words} words for {held} frames");

    // Above SYNCED every frame is read whole for its checksum.
    pool.store(header::SYNCED, 0, Ordering::Relaxed);
    pool.store(header::CHECKED, 0, Ordering::Relaxed);
    drop(pool);
    let (pool, words) = words_read(|| Pool::open(&path).unwrap());
    assert!(pool.recovery().unwrap().walked);
    assert!(words >= 8 * held, "{words} words for {held} frames");

    // That walk recorded this boot: the next open trusts the state again,
    // unless a writer died mid-append.
    drop(pool);
    let (pool, words) = words_read(|| Pool::open(&path).unwrap());
    assert_eq!(words, 0);
    pool.store(header::DIRTY, 1, Ordering::Relaxed);
    drop(pool);
    let pool = Pool::open(&path).unwrap();
    assert!(pool.recovery().unwrap().walked);
    assert_eq!(pool.load(header::DIRTY, Ordering::Relaxed), 0);
}
