//! Reads into reused buffers ([`Pool::get_into`], [`Cursor::try_next_into`],
//! and the [`ring::fetch`] behind both): buffers of any earlier size, tag
//! areas that end mid-word, frames after a wrap marker, damaged frames and
//! frames a writer reuses while they are copied.

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::frame::{self, FrameError};
use crate::ring::{self, Fetch, Generation, Ring, SliceRing};
use crate::{Error, Location, Message, MessageBuf, Options, Pool, Seq, Start};

/// Tags and data of message `seq`: tag areas of every length modulo 8 (so
/// the payload starts at every offset within a word), payloads from empty
/// to a few hundred bytes.
fn content(seq: u64) -> (Vec<String>, Vec<u8>) {
    let tags = (0..seq % 3)
        .map(|i| "t".repeat((seq + i) as usize % 11))
        .collect();
    let data = (0..seq * 53 % 301).map(|i| (seq ^ i) as u8).collect();
    (tags, data)
}

fn append(pool: &Pool, seq: u64) {
    let (tags, data) = content(seq);
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    assert_eq!(pool.append(&tags, &data).unwrap(), Seq(seq));
}

/// What `buf` holds, as the owned message it must equal.
fn held(buf: &MessageBuf) -> Message {
    buf.clone().into_message()
}

fn expected(pool: &Pool, seq: u64) -> Message {
    let (tags, data) = content(seq);
    let msg = pool.get(Seq(seq)).unwrap();
    assert_eq!((&msg.tags, &msg.data), (&tags, &data), "get({seq})");
    msg
}

#[test]
fn one_buffer_reused_across_lengths_reads_what_get_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("r.pool"), 1 << 16, Options::new()).unwrap();
    for seq in 1..=40 {
        append(&pool, seq);
    }
    // A buffer left longer than any message, by a message of another pool.
    let mut buf = MessageBuf::new();
    let other = Pool::create(dir.path().join("o.pool"), 1 << 16, Options::new()).unwrap();
    other.append(&["a-long-tag-area"], &[9; 2000]).unwrap();
    other.get_into(Seq(1), &mut buf).unwrap();
    assert_eq!(buf.data().len(), 2000);
    // Lengths grow and shrink from one read to the next.
    for seq in [7, 1, 40, 2, 39, 3, 3, 21, 6, 5, 4] {
        pool.get_into(Seq(seq), &mut buf).unwrap();
        assert_eq!(held(&buf), expected(&pool, seq), "seq {seq}");
        assert_eq!(buf.seq(), Seq(seq));
        assert_eq!(buf.time(), expected(&pool, seq).time);
        assert_eq!(buf.tags().collect::<Vec<_>>(), content(seq).0);
    }
    let mut cursor = pool.cursor(Start::Oldest);
    let mut seq = 1;
    while cursor.try_next_into(&mut buf).unwrap() {
        assert_eq!(held(&buf), expected(&pool, seq));
        seq += 1;
    }
    assert_eq!(seq, 41);
    // Nothing more: `false`, and the buffer holds no message.
    assert_eq!(
        (buf.seq(), buf.data(), buf.tags().count()),
        (Seq(0), &[][..], 0)
    );
}

#[test]
fn a_failed_read_leaves_no_message_in_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("r.pool"), 1 << 16, Options::new()).unwrap();
    append(&pool, 1);
    let mut buf = MessageBuf::new();
    pool.get_into(Seq(1), &mut buf).unwrap();
    let err = pool.get_into(Seq(2), &mut buf).unwrap_err();
    assert!(
        matches!(err, Error::SeqNotFound { seq: Seq(2), .. }),
        "{err}"
    );
    assert_eq!(
        (buf.seq(), buf.data(), buf.tags().count()),
        (Seq(0), &[][..], 0)
    );
}

#[test]
fn a_corrupt_checksum_fails_the_read_into_a_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    for seq in 1..=3 {
        append(&pool, seq);
    }
    // Flip a payload byte of seq 2 through the file: the mapping sees it.
    let info = pool.info();
    let ring_off = info.file_len - info.ring_len;
    let (tags, data) = content(1);
    let first_len = frame::frame_len(
        &tags.iter().map(String::as_str).collect::<Vec<_>>(),
        data.len(),
    )
    .unwrap();
    let second = ring_off + frame::pad8(first_len);
    // Past seq 2's 9-byte tag area, in its payload.
    let at = second + frame::FRAME_HEADER + 20;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut byte = [0];
    std::fs::File::open(&path)
        .unwrap()
        .read_exact_at(&mut byte, at)
        .unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();

    let mut buf = MessageBuf::new();
    pool.get_into(Seq(1), &mut buf).unwrap();
    let err = pool.get_into(Seq(2), &mut buf).unwrap_err();
    let Error::Corrupt { at, reason, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        (*at, *reason),
        (Location::Seq(Seq(2)), "frame checksum mismatch")
    );
    assert_eq!(buf.seq(), Seq(0));
    // A cursor reports it once and moves on to seq 3.
    let mut cursor = pool.cursor(Start::Oldest);
    assert!(cursor.try_next_into(&mut buf).unwrap());
    let err = cursor.try_next_into(&mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                at: Location::Seq(Seq(2)),
                ..
            }
        ),
        "{err}"
    );
    assert!(cursor.try_next_into(&mut buf).unwrap());
    assert_eq!(held(&buf), expected(&pool, 3));
}

#[test]
fn frames_after_the_ring_edge_read_into_a_buffer() {
    let dir = tempfile::tempdir().unwrap();
    // A 4 KiB ring, lapped many times: frames land right after wrap markers
    // and right at the ring's end.
    let pool = Pool::create(dir.path().join("w.pool"), 3 * 4096, Options::new()).unwrap();
    let mut buf = MessageBuf::new();
    let mut cursor = pool.cursor(Start::Oldest);
    let (mut wrapped, mut last_head) = (0, 0);
    for seq in 1..=600 {
        append(&pool, seq);
        // The cursor's position hint is where the frame before ended: for
        // a frame that wrapped, its wrap marker or the ring's end.
        assert!(cursor.try_next_into(&mut buf).unwrap());
        assert_eq!(held(&buf), expected(&pool, seq));
        let head = pool.info().head;
        if head < last_head {
            wrapped += 1;
            pool.get_into(Seq(seq), &mut buf).unwrap();
            assert_eq!(held(&buf), expected(&pool, seq));
        }
        last_head = head;
    }
    assert!(wrapped > 20, "the ring wrapped {wrapped} times");
}

/// A ring whose bytes a writer reuses while they are copied: the copy
/// returns torn bytes and, with `evicts`, the ring publishes a new
/// `(OLDEST, TAIL)` once the copy ran, as a writer that evicts a frame
/// before overwriting it does (`FORMAT.md` §5.3).
struct Overwritten<'a> {
    ring: SliceRing<'a>,
    evicts: bool,
    copied: Cell<bool>,
}

impl Ring for Overwritten<'_> {
    fn len(&self) -> u64 {
        self.ring.len()
    }

    fn word(&self, off: u64) -> u64 {
        self.ring.word(off)
    }

    fn copy(&self, off: u64, dst: &mut [u8]) {
        self.ring.copy(off, dst);
        dst.fill(0xAB);
        self.copied.set(true);
    }

    fn generation(&self) -> Generation {
        let moved = u64::from(self.evicts && self.copied.get());
        Generation {
            oldest: 1 + moved,
            tail: moved * 8,
        }
    }
}

#[test]
fn a_frame_overwritten_mid_copy_is_gone_not_corrupt() {
    let mut bytes = Vec::new();
    frame::encode(&mut bytes, 1, 5, &["tag"], &[7; 100]);
    let max = bytes.len() as u64;
    let mut buf = MessageBuf::new();
    // Undisturbed, the frame reads.
    let calm = SliceRing { bytes: &bytes };
    assert_eq!(ring::fetch(&calm, 0, 1, max, &mut buf), Ok(max));
    assert_eq!((buf.seq(), buf.data()), (Seq(1), &[7; 100][..]));
    assert_eq!(buf.tags().collect::<Vec<_>>(), ["tag"]);
    // Overwritten while copied: the torn copy fails its checksum, but the
    // moved generation says why, and nothing is returned.
    let racing = |evicts| Overwritten {
        ring: SliceRing { bytes: &bytes },
        evicts,
        copied: Cell::new(false),
    };
    assert_eq!(
        ring::fetch(&racing(true), 0, 1, max, &mut buf),
        Err(Fetch::Gone)
    );
    assert_eq!((buf.seq(), buf.data()), (Seq(0), &[][..]));
    // The same torn bytes under an unchanged generation are damage.
    assert_eq!(
        ring::fetch(&racing(false), 0, 1, max, &mut buf),
        Err(Fetch::Bad(0, FrameError::Checksum))
    );
    assert_eq!(buf.seq(), Seq(0));
}

/// Reused buffers against a writer lapping a small ring: every read that
/// succeeds returns exactly the message of its seq.
#[test]
fn reused_buffers_racing_overwrites_never_see_torn_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.pool");
    let pool = Pool::create(&path, 3 * 4096, Options::new().index_slots(4)).unwrap();
    let reader = Pool::open_read_only(&path).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut cursor = pool.cursor(Start::Oldest);
            let mut buf = MessageBuf::new();
            while !done.load(Ordering::Acquire) {
                let before = cursor.next_seq();
                match cursor.try_next_into(&mut buf) {
                    Ok(true) => {
                        assert_eq!(buf.seq(), before);
                        let (tags, data) = content(before.0);
                        assert_eq!(buf.data(), data, "torn frame {before}");
                        assert_eq!(buf.tags().collect::<Vec<_>>(), tags);
                    }
                    Ok(false) => std::thread::yield_now(),
                    Err(Error::RetentionGap { .. } | Error::Busy { .. }) => {}
                    Err(e) => panic!("cursor: {e}"),
                }
            }
        });
        s.spawn(|| {
            let mut buf = MessageBuf::new();
            while !done.load(Ordering::Acquire) {
                let info = reader.info();
                for seq in info.oldest.0.saturating_sub(2)..=info.newest.0 + 1 {
                    match reader.get_into(Seq(seq), &mut buf) {
                        Ok(()) => {
                            let (tags, data) = content(seq);
                            assert_eq!(buf.data(), data, "torn get {seq}");
                            assert_eq!(buf.tags().collect::<Vec<_>>(), tags);
                        }
                        Err(Error::SeqNotFound { .. }) => assert_eq!(buf.seq(), Seq(0)),
                        Err(e) => panic!("get {seq}: {e}"),
                    }
                }
            }
        });
        for seq in 1..=20_000 {
            append(&pool, seq);
        }
        done.store(true, Ordering::Release);
    });
}
