//! Damaged and unrecovered pools: readers never write, and damaged
//! messages are reported without hiding the others.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use crate::common::Env;

/// The pool file's bytes and modification time.
fn fingerprint(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        fs::read(path).unwrap(),
        fs::metadata(path).unwrap().modified().unwrap(),
    )
}

/// File offset of the ring of pool `name`.
fn ring_offset(env: &Env, name: &str) -> usize {
    let info = &env.ok(&["pool", "info", name]).records()[0];
    (info["size"].as_u64().unwrap() - info["ring_size"].as_u64().unwrap()) as usize
}

#[test]
fn readers_never_write_a_pool_that_needs_recovery() {
    let env = Env::new();
    env.create("p", "64K");
    env.feed("p", "1\n2\n3\n");
    let path = env.pools().join("p.plex");
    // As if a writer died after writing seq 3 and before publishing it.
    let mut bytes = fs::read(&path).unwrap();
    bytes[152..160].copy_from_slice(&2u64.to_le_bytes());
    bytes[160..168].copy_from_slice(&1u64.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let before = fingerprint(&path);

    assert_eq!(env.ok(&["fetch", "p", "2"]).records()[0]["data"], 2);
    env.run(&["fetch", "p", "3"]).fails(3, "NotFound");
    let run = env.ok(&["follow", "p", "--no-follow"]);
    assert_eq!(run.records().len(), 2);
    let info = &env.ok(&["pool", "info", "p"]).records()[0];
    assert_eq!(
        (info["newest"].as_u64(), info["damaged"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(env.ok(&["pool", "list"]).records().len(), 1);
    assert!(
        fingerprint(&path) == before,
        "a reading command changed the pool"
    );

    // A writer recovers it: seq 3 was never acknowledged and is reused.
    let receipts = env.feed("p", "\"new\"\n");
    assert_eq!(receipts[0]["seq"], 3);
    assert_eq!(env.ok(&["fetch", "p", "3"]).records()[0]["data"], "new");
}

#[test]
fn a_damaged_message_is_reported_and_the_others_read() {
    let env = Env::new();
    env.create("p", "64K");
    env.feed("p", "1\n2\n3\n");
    let path = env.pools().join("p.plex");
    let ring = ring_offset(&env, "p");
    // Each frame is 32 header bytes plus 1 data byte, padded to 40: flip
    // the data byte of seq 2.
    let mut bytes = fs::read(&path).unwrap();
    bytes[ring + 40 + 32] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let err = env.run(&["fetch", "p", "2"]).fails(7, "Corrupt");
    assert_eq!(err["seq"], 2);
    assert_eq!(env.ok(&["fetch", "p", "3"]).records()[0]["data"], 3);

    let run = env.run(&["follow", "p", "--no-follow"]);
    let err = run.fails(7, "Corrupt");
    assert_eq!(err["seq"], 2);
    let seqs: Vec<u64> = run
        .records()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 3]);

    let info = &env.ok(&["pool", "info", "p"]).records()[0];
    assert_eq!(
        (info["newest"].as_u64(), info["damaged"].as_u64()),
        (Some(3), Some(1))
    );
    // A writer keeps the damaged message (no warning off a terminal) and
    // appends after it.
    let run = env.run_stdin(&["feed", "p"], b"4\n");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(run.records()[0]["seq"], 4);
    env.run(&["fetch", "p", "2"]).fails(7, "Corrupt");
}

#[test]
fn batched_feeds_keep_one_receipt_per_line_in_order() {
    let env = Env::new();
    env.create("p", "1M");
    let lines: String = (0..3000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    for durability in ["fast", "flush"] {
        let run = env.run_stdin(&["feed", "p", "--durability", durability], lines.as_bytes());
        assert_eq!(run.code, 0, "{run:?}");
        let receipts = run.records();
        assert_eq!(receipts.len(), 3000);
        let first = receipts[0]["seq"].as_u64().unwrap();
        for (i, receipt) in receipts.iter().enumerate() {
            assert_eq!(receipt["seq"].as_u64(), Some(first + i as u64));
            assert!(receipt["time"].is_string());
        }
        let last = first + 2999;
        let msg = &env.ok(&["fetch", "p", &last.to_string()]).records()[0];
        assert_eq!(msg["data"]["i"], 2999);
        assert_eq!(msg["time"], receipts[2999]["time"]);
    }
}
