//! Corruption: flipped and truncated bytes in frames, the index and the
//! header. The store never returns wrong data, and reports `Corrupt` where
//! it cannot repair.

use std::path::{Path, PathBuf};

use plex_store::{
    check_bytes, Durability, Error, ErrorKind, Location, Message, Options, Pool, Seq, Start,
};

const SIZE: u64 = 4096 * 4;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    messages: Vec<Message>,
    /// File range of the newest frame (unpadded).
    newest_frame: std::ops::Range<usize>,
}

fn fixture(durability: Durability) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pool");
    let pool = Pool::create(
        &path,
        SIZE,
        Options::new().index_slots(16).durability(durability),
    )
    .unwrap();
    for i in 0..12u64 {
        let data = vec![i as u8; 20 + 3 * i as usize];
        pool.append(&["tag", &format!("n{i}")], &data).unwrap();
    }
    let info = pool.info();
    let messages: Vec<Message> = (1..=12).map(|s| pool.get(Seq(s)).unwrap()).collect();
    let last = &messages[11];
    let len = 32 + (2 + 3) + (2 + last.tags[1].len()) + last.data.len();
    let ring_off = (info.file_len - info.ring_len) as usize;
    let end = ring_off + info.head as usize;
    let start = end - len.next_multiple_of(8);
    drop(pool);
    let bytes = std::fs::read(&path).unwrap();
    Fixture {
        _dir: dir,
        path,
        bytes,
        messages,
        newest_frame: start..start + len,
    }
}

/// Writes a damaged image to `path` as a restart would leave it: bytes
/// changed outside the page cache come back only after the machine
/// restarted (power loss, bad storage), and then `CHECKED` no longer names
/// the running boot, so the next writable open recovers (FORMAT.md §6).
fn write_after_restart(path: &Path, bytes: &[u8]) {
    let mut bytes = bytes.to_vec();
    if let Some(checked) = bytes.get_mut(CHECKED) {
        checked.fill(0);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Offsets of the `CHECKED` word in the header.
const CHECKED: std::ops::Range<usize> = 176..184;

/// Opens `bytes` as a pool; if that works, every read must be either the
/// original message or an error, never different data.
fn open_and_check(path: &Path, bytes: &[u8], originals: &[Message]) -> Result<Pool, ErrorKind> {
    write_after_restart(path, bytes);
    // The byte-slice checker must agree that it is at least not a panic.
    let _ = check_bytes(bytes);
    let pool = Pool::open(path).map_err(|e| e.kind())?;
    for original in originals {
        match pool.get(original.seq) {
            Ok(msg) => assert_eq!(&msg, original, "wrong data for {}", original.seq),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt),
                "unexpected error {e}"
            ),
        }
    }
    let mut cursor = pool.cursor(plex_store::Start::Oldest);
    while let Ok(Some(msg)) = cursor.try_next() {
        assert_eq!(msg, originals[msg.seq.0 as usize - 1]);
    }
    Ok(pool)
}

/// A published frame that fails validation is kept and reported, never
/// dropped with the frames after it (FORMAT.md §6). Before, recovery
/// truncated the pool to seq 11 and reused seq 12 for new data.
#[test]
fn flipped_newest_frame_is_reported_not_dropped() {
    let f = fixture(Durability::Fast);
    for i in f.newest_frame.clone() {
        let mut bad = f.bytes.clone();
        bad[i] ^= 0xff;
        let pool = open_and_check(&f.path, &bad, &f.messages)
            .unwrap_or_else(|kind| panic!("byte {i}: open failed with {kind:?}"));
        assert_eq!(pool.info().newest, Seq(12), "byte {i}");
        let recovery = pool.recovery().unwrap();
        assert_eq!(recovery.damaged, [Seq(12)..Seq(13)], "byte {i}");
        assert_eq!(pool.get(Seq(12)).unwrap_err().kind(), ErrorKind::Corrupt);
        // The next append gets a new seq; nothing is reused.
        assert_eq!(pool.append(&[], b"again").unwrap(), Seq(13));
        assert_eq!(pool.get(Seq(13)).unwrap().data, b"again");
        let report = check_bytes(&std::fs::read(&f.path).unwrap()).unwrap();
        assert_eq!((report.newest, report.damaged), (Seq(13), 1), "byte {i}");
        assert!(!report.needs_repair);
    }
}

/// The case: one flipped byte in message 2 of 3. Messages 2 and 3
/// used to vanish on the next open, read-only commands included.
#[test]
fn damaged_middle_message_is_reported_and_the_rest_stay_readable() {
    for slots in [1, 16] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("three.pool");
        // One slot: message 3 is found by resynchronising past message 2.
        let pool = Pool::create(&path, SIZE, Options::new().index_slots(slots)).unwrap();
        for i in 1..=3u8 {
            pool.append(&["t"], &[i; 40]).unwrap();
        }
        let info = pool.info();
        drop(pool);
        let mut bytes = std::fs::read(&path).unwrap();
        let ring_off = (info.file_len - info.ring_len) as usize;
        let second = ring_off + (32 + 3 + 40usize).next_multiple_of(8);
        bytes[second + 50] ^= 0x01;
        write_after_restart(&path, &bytes);

        for read_only in [true, false] {
            let pool = if read_only {
                Pool::open_read_only(&path).unwrap()
            } else {
                Pool::open(&path).unwrap()
            };
            assert_eq!((pool.info().oldest, pool.info().newest), (Seq(1), Seq(3)));
            assert_eq!(pool.get(Seq(1)).unwrap().data, [1; 40]);
            let err = pool.get(Seq(2)).unwrap_err();
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
            assert_eq!(pool.get(Seq(3)).unwrap().data, [3; 40], "slots {slots}");
            assert_eq!(pool.damaged().unwrap(), [Seq(2)..Seq(3)]);
            let mut cursor = pool.cursor(Start::Oldest);
            assert_eq!(cursor.try_next().unwrap().unwrap().seq, Seq(1));
            assert_eq!(cursor.try_next().unwrap_err().kind(), ErrorKind::Corrupt);
            assert_eq!(cursor.next_seq(), Seq(3));
            assert_eq!(cursor.try_next().unwrap().unwrap().seq, Seq(3));
            match pool.recovery() {
                Some(recovery) => assert_eq!(recovery.damaged, [Seq(2)..Seq(3)]),
                None => assert!(read_only),
            }
        }
        // Writers evict the damaged frame like any other, and go on.
        let pool = Pool::open(&path).unwrap();
        for i in 0..1000u64 {
            pool.append(&[], &i.to_le_bytes()).unwrap();
        }
        assert!(pool.info().oldest > Seq(3));
        assert!(pool.damaged().unwrap().is_empty());
        assert_eq!(
            check_bytes(&std::fs::read(&path).unwrap()).unwrap().damaged,
            0
        );
    }
}

/// Frames written after the newest published seq by a writer that died
/// before publishing them are discarded, reported, and invalidated so that
/// their reused seqs can never resolve to the old bytes.
#[test]
fn unpublished_frames_are_discarded_and_reported() {
    let f = fixture(Durability::Fast);
    let mut bad = f.bytes.clone();
    // Roll NEWEST back to 10, as if 11 and 12 were never published.
    let newest = 152;
    bad[newest..newest + 8].copy_from_slice(&10u64.to_le_bytes());
    write_after_restart(&f.path, &bad);
    assert_eq!(check_bytes(&bad).unwrap().discarded, 2);
    let pool = Pool::open(&f.path).unwrap();
    let recovery = pool.recovery().unwrap();
    assert_eq!(recovery.discarded, Seq(11)..Seq(13));
    assert!(recovery.damaged.is_empty() && recovery.repaired);
    assert_eq!(pool.info().newest, Seq(10));
    assert_eq!(pool.append(&[], b"new 11").unwrap(), Seq(11));
    assert_eq!(pool.get(Seq(11)).unwrap().data, b"new 11");
    let report = check_bytes(&std::fs::read(&f.path).unwrap()).unwrap();
    assert_eq!((report.discarded, report.needs_repair), (0, false));
}

#[test]
fn flipped_synced_frame_is_reported_corrupt() {
    let f = fixture(Durability::Flush);
    for i in f.newest_frame.clone() {
        let mut bad = f.bytes.clone();
        bad[i] ^= 0xff;
        match open_and_check(&f.path, &bad, &f.messages) {
            // A synced frame is never silently dropped: either the open
            // refuses, or the read of that seq does.
            Ok(pool) => {
                assert_eq!(pool.info().newest, Seq(12));
                assert_eq!(
                    pool.get(Seq(12)).unwrap_err().kind(),
                    ErrorKind::Corrupt,
                    "byte {i}"
                );
            }
            Err(kind) => assert_eq!(kind, ErrorKind::Corrupt, "byte {i}"),
        }
    }
}

#[test]
fn truncation_anywhere_is_corrupt() {
    let f = fixture(Durability::Fast);
    let cuts = (0..200)
        .chain(f.newest_frame.clone())
        .chain([f.bytes.len() - 1]);
    for len in cuts {
        let kind = open_and_check(&f.path, &f.bytes[..len], &f.messages).unwrap_err();
        assert_eq!(kind, ErrorKind::Corrupt, "truncated to {len}");
        assert_eq!(
            check_bytes(&f.bytes[..len]).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }
    // Extending the file is refused too: the geometry no longer matches.
    let mut longer = f.bytes.clone();
    longer.extend_from_slice(&[0; 4096]);
    assert_eq!(
        open_and_check(&f.path, &longer, &f.messages).unwrap_err(),
        ErrorKind::Corrupt
    );
}

#[test]
fn every_static_header_byte_is_checked() {
    let f = fixture(Durability::Fast);
    for i in 0..128 {
        let mut bad = f.bytes.clone();
        bad[i] ^= 0x10;
        let kind = open_and_check(&f.path, &bad, &f.messages).unwrap_err();
        let expected = if (8..12).contains(&i) {
            ErrorKind::Usage
        } else {
            ErrorKind::Corrupt
        };
        assert_eq!(kind, expected, "header byte {i}");
    }
}

#[test]
fn unknown_version_is_refused_clearly() {
    let f = fixture(Durability::Fast);
    let mut bad = f.bytes.clone();
    // Version 1 (before the CHECKED, SYNC_FAILED and waiter words) and a
    // future version 3 alike.
    for version in [1u32, 3] {
        bad[8..12].copy_from_slice(&version.to_le_bytes());
        std::fs::write(&f.path, &bad).unwrap();
        let err = Pool::open(&f.path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        let text = err.to_string();
        assert!(text.contains(&format!("version {version}")), "{err}");
        assert!(text.contains("reads version 2"), "{err}");
        assert!(matches!(
            check_bytes(&bad),
            Err(plex_store::Error::UnsupportedVersion { found, supported: 2, .. }) if found == version
        ));
    }
}

#[test]
fn published_state_bytes_are_repaired_or_refused() {
    let f = fixture(Durability::Fast);
    for i in 128..176 {
        for flip in [0x01u8, 0x80] {
            let mut bad = f.bytes.clone();
            bad[i] ^= flip;
            if let Ok(pool) = open_and_check(&f.path, &bad, &f.messages) {
                // Whatever was kept is readable and appends continue.
                let next = pool.info().newest.0 + 1;
                assert_eq!(pool.append(&[], b"x").unwrap(), Seq(next), "byte {i}");
            }
        }
    }
}

#[test]
fn corrupt_index_falls_back_to_scan() {
    let f = fixture(Durability::Fast);
    let mut bad = f.bytes.clone();
    // The whole index region (16 slots of 16 bytes after the 4096-byte header).
    for b in &mut bad[4096..4096 + 256] {
        *b ^= 0x5a;
    }
    let pool = open_and_check(&f.path, &bad, &f.messages).unwrap();
    for original in &f.messages {
        assert_eq!(&pool.get(original.seq).unwrap(), original);
    }
}

#[test]
fn garbage_never_panics_the_byte_checker() {
    let f = fixture(Durability::Fast);
    assert_eq!(check_bytes(&f.bytes).unwrap().messages, 12);
    assert!(check_bytes(&[]).is_err());
    assert!(check_bytes(&vec![0xff; SIZE as usize]).is_err());
    // A deterministic spray of byte flips over the whole file.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bad = f.bytes.clone();
        let at = (state % bad.len() as u64) as usize;
        bad[at] ^= (state >> 32) as u8 | 1;
        if let Ok(report) = check_bytes(&bad) {
            // Nothing invented: at most the 12 messages written validate,
            // and every other published seq is counted as damaged.
            let held = report.newest.0 + 1 - report.oldest.0;
            assert!(report.messages <= 12);
            assert_eq!(report.messages + report.damaged, held);
        }
    }
}
