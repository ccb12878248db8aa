//! Corruption: flipped and truncated bytes in frames, the index and the
//! header. The store never returns wrong data, and reports `Corrupt` where
//! it cannot repair.

use std::path::{Path, PathBuf};

use plex_store::{check_bytes, Durability, ErrorKind, Message, Options, Pool, Seq};

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

/// Opens `bytes` as a pool; if that works, every read must be either the
/// original message or an error, never different data.
fn open_and_check(path: &Path, bytes: &[u8], originals: &[Message]) -> Result<Pool, ErrorKind> {
    std::fs::write(path, bytes).unwrap();
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

#[test]
fn flipped_newest_frame_is_truncated_not_returned() {
    let f = fixture(Durability::Fast);
    for i in f.newest_frame.clone() {
        let mut bad = f.bytes.clone();
        bad[i] ^= 0xff;
        let pool = open_and_check(&f.path, &bad, &f.messages)
            .unwrap_or_else(|kind| panic!("byte {i}: open failed with {kind:?}"));
        // Unsynced and torn: recovery drops it and keeps the rest.
        assert_eq!(pool.info().newest, Seq(11), "byte {i}");
        assert_eq!(pool.get(Seq(12)).unwrap_err().kind(), ErrorKind::NotFound);
        // The next append reuses nothing wrongly: seq 12 is new data.
        assert_eq!(pool.append(&[], b"again").unwrap(), Seq(12));
        assert_eq!(pool.get(Seq(12)).unwrap().data, b"again");
        let report = check_bytes(&std::fs::read(&f.path).unwrap()).unwrap();
        assert_eq!((report.newest, report.needs_repair), (Seq(12), false));
    }
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
    bad[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&f.path, &bad).unwrap();
    let err = Pool::open(&f.path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("version 2"), "{err}");
    assert!(matches!(
        check_bytes(&bad),
        Err(plex_store::Error::UnsupportedVersion { found: 2, .. })
    ));
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
            assert!(report.newest.0 <= 12 && report.messages <= 12);
        }
    }
}
