//! Readers racing a writer that laps a small ring: every message returned
//! is intact, and every loss is reported as an exact, contiguous gap.

use std::sync::atomic::{AtomicBool, Ordering};

use plex_store::{Error, Options, Pool, Seq, Start};

/// Payload of message `seq`: its length and bytes both derive from the seq.
fn payload(seq: u64) -> Vec<u8> {
    let len = (seq * 37 % 300) as usize;
    (0..len).map(|i| (seq as usize ^ i) as u8).collect()
}

#[test]
fn readers_racing_overwrites_never_see_torn_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.pool");
    // A 4 KiB ring with 4 index slots: constant wrapping and stale slots.
    let pool = Pool::create(&path, 3 * 4096, Options::new().index_slots(4)).unwrap();
    // Random access also goes through a read-only handle of its own.
    let reader = Pool::open_read_only(&path).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut cursor = pool.cursor(Start::Oldest);
                let (mut read, mut gaps) = (0u64, 0u64);
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let before = cursor.next_seq();
                    match cursor.try_next() {
                        Ok(Some(msg)) => {
                            assert_eq!(msg.seq, before);
                            assert_eq!(msg.data, payload(msg.seq.0), "torn frame {}", msg.seq);
                            read += 1;
                        }
                        Ok(None) if finished => break,
                        Ok(None) => std::thread::yield_now(),
                        Err(Error::RetentionGap { lost }) => {
                            assert_eq!(lost.start, before);
                            assert!(lost.end > lost.start);
                            assert_eq!(cursor.next_seq(), lost.end);
                            gaps += 1;
                        }
                        Err(e) => panic!("reader: {e}"),
                    }
                }
                assert!(read > 0 || gaps > 0);
            });
        }
        s.spawn(|| {
            // Random-access readers exercise the index and the scan.
            while !done.load(Ordering::Acquire) {
                let info = reader.info();
                for seq in info.oldest.0.saturating_sub(2)..=info.newest.0 + 1 {
                    match reader.get(Seq(seq)) {
                        Ok(msg) => assert_eq!(msg.data, payload(seq), "torn get {seq}"),
                        Err(Error::SeqNotFound { .. }) => {}
                        Err(e) => panic!("get {seq}: {e}"),
                    }
                }
            }
        });
        for seq in 1..=20_000u64 {
            assert_eq!(pool.append(&[], &payload(seq)).unwrap(), Seq(seq));
        }
        done.store(true, Ordering::Release);
    });
}
