//! Tests of the pool handle that need its private parts.

use super::*;
use crate::TryAppend;

/// The race behind the flaky concurrency test, replayed step by step.
/// A writer that frees a wrap marker at `TAIL` moves `TAIL` to 0 without
/// changing `OLDEST`, then overwrites the marker with the middle of a
/// frame. A reader that loaded the old `TAIL` finds "bad frame magic"
/// there while `OLDEST` is unchanged, which the old `OLDEST`-only
/// re-check reported as `Corrupt`; the `(OLDEST, TAIL)` re-check sees
/// that the bytes were reused and retries.
#[test]
fn freeing_a_wrap_marker_moves_the_generation_but_not_oldest() {
    let dir = tempfile::tempdir().unwrap();
    // A 4096-byte ring: three 1032-byte frames fit, the fourth wraps.
    let pool = Pool::create(
        dir.path().join("m.pool"),
        3 * 4096,
        Options::new().index_slots(4),
    )
    .unwrap();
    for (i, len) in [1000, 1000, 1000, 1000, 468, 1000].into_iter().enumerate() {
        pool.append(&[], &vec![i as u8 + 1; len]).unwrap();
    }
    let ring = pool.ring();
    let before = pool.snapshot();
    // Frame 3 ended at 3096, where frame 4's wrap marker is; evicting it
    // left TAIL on the marker, and HEAD (2568) is before it.
    assert_eq!((before.oldest, before.tail, before.head), (4, 3096, 2568));
    assert_eq!(ring::resolve(&ring, 3096), Ok(0));

    // Frame 7 (2568..3600) needs the marker's bytes.
    pool.append(&[], &[7; 1000]).unwrap();
    let after = ring.generation();
    assert_eq!((after.oldest, after.tail), (4, 0), "OLDEST alone misses it");
    let mut buf = Vec::new();
    let at_old_tail = ring::load(&ring, 3096, pool.geo.max_frame(), 0, &mut buf);
    assert_eq!(at_old_tail, Err(FrameError::Magic));
    // The reading routine retries and finds every held message.
    for seq in 4..=7 {
        assert_eq!(pool.get(Seq(seq)).unwrap().seq, Seq(seq));
    }
}

/// A read-only mapping (a file without write permission) reads, and
/// follows by sleeping on the futex without registering.
#[test]
fn read_only_mapping_reads_and_waits_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pool");
    let writer = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    writer.append(&["a"], b"one").unwrap();
    let file = File::open(&path).unwrap();
    let options = Options::new().poll_interval(Duration::from_millis(1));
    let mut pool = Pool::map(path, file, Access::ReadOnly { register: false }, options).unwrap();
    pool.read_only = true;
    assert!(!pool.map.is_writable() && !pool.map.coordination_writable());
    assert_eq!(pool.get(Seq(1)).unwrap().data, b"one");
    assert!(!pool.wait_for(Seq(2), Duration::from_millis(5)));
    assert_eq!(pool.info().waiters, 0);
    writer.append(&[], b"two").unwrap();
    assert!(pool.wait_for(Seq(2), Duration::from_secs(60)));
    let err = pool.append(&[], b"x").unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
}

/// The non-blocking append publishes when the lock is free, and leaves
/// the pool untouched while another handle (its own open file, as another
/// process has) or another thread of this handle holds the writer lock.
#[test]
fn try_append_appends_when_free_and_would_block_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    let batch: [(&[&str], &[u8]); 2] = [(&["a"], b"one"), (&[], b"two")];
    let TryAppend::Appended(receipt) = pool.try_append_batch_receipt(&batch).unwrap() else {
        panic!("the lock is free");
    };
    assert_eq!(receipt.seqs, Seq(1)..Seq(3));
    assert_eq!(pool.get(Seq(2)).unwrap().data, b"two");

    let other = Pool::open(&path).unwrap();
    let held = other.lock().unwrap();
    let outcome = pool.try_append_batch_receipt(&batch[..1]).unwrap();
    assert_eq!(outcome, TryAppend::WouldBlock);
    assert_eq!(pool.info().newest, Seq(2));
    drop(held);

    let held = pool.lock().unwrap();
    let outcome = pool.try_append_batch_receipt(&batch[..1]).unwrap();
    assert_eq!(outcome, TryAppend::WouldBlock);
    drop(held);

    let outcome = pool.try_append_batch_receipt(&batch[..1]).unwrap();
    assert!(matches!(outcome, TryAppend::Appended(r) if r.seqs == (Seq(3)..Seq(4))));
    assert_eq!(other.get(Seq(3)).unwrap().tags, ["a"]);
}

/// The non-blocking append checks like the others before it tries.
#[test]
fn try_append_refuses_what_append_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pool");
    Pool::create(&path, 1 << 16, Options::new()).unwrap();
    let pool = Pool::open_read_only(&path).unwrap();
    let err = pool.try_append_batch_receipt(&[(&[], b"x")]).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    let writer = Pool::open(&path).unwrap();
    let huge = vec![0; 1 << 16];
    let err = writer
        .try_append_batch_receipt(&[(&[], &huge)])
        .unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
}
