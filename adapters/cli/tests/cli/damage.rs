//! Damaged and unrecovered pools: readers never write, and damaged
//! messages are reported without hiding the others.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::SystemTime;

use crate::common::{Env, Run};

/// The pool file's bytes and modification time.
fn fingerprint(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        fs::read(path).unwrap(),
        fs::metadata(path).unwrap().modified().unwrap(),
    )
}

/// File offset of the ring of pool `name`.
fn ring_offset(env: &Env, name: &str) -> usize {
    let info = &env.ok(&["pool", "info", &env.p(name)]).records()[0];
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

local_and_remote! {
    fn a_damaged_message_is_reported_and_the_others_read(env) {
        env.create("p", "64K");
        env.feed("p", "1\n2\n3\n");
        // Each frame is 32 header bytes plus 1 data byte, padded to 40: flip
        // the data byte of seq 2. In place, as a served pool is mapped.
        let ring = ring_offset(env, "p");
        flip(&env.pools().join("p.plex"), ring + 40 + 32);

        let err = env.run(&["fetch", &env.p("p"), "2"]).fails(7, "Corrupt");
        assert_eq!(err["seq"], 2);
        assert_eq!(env.ok(&["fetch", &env.p("p"), "3"]).records()[0]["data"], 3);

        // A follow reports the damaged message and goes on past it.
        let run = env.run(&["follow", &env.p("p"), "--no-follow"]);
        let err = run.fails(7, "Corrupt");
        assert_eq!(err["seq"], 2);
        assert_eq!(seqs(&run), [1, 3]);
        let run = env.run(&["follow", &env.p("p"), "--since", "2", "--one"]);
        assert_eq!(run.fails(7, "Corrupt")["seq"], 2);
        assert_eq!(seqs(&run), [3]);
        // Live, it goes on to what is appended after the damage.
        let run = env.run_stdin(&["feed", env.p("p").as_str()], b"4\n");
        assert_eq!((run.code, run.stderr.as_str()), (0, ""));
        assert_eq!(run.records()[0]["seq"], 4);
        let run = env.run(&["follow", &env.p("p"), "--since", "1", "--timeout", "300ms"]);
        assert_eq!(run.fails(7, "Corrupt")["seq"], 2);
        assert_eq!(seqs(&run), [1, 3, 4]);

        let info = &env.ok(&["pool", "info", &env.p("p")]).records()[0];
        assert_eq!(
            (info["newest"].as_u64(), info["damaged"].as_u64()),
            (Some(4), Some(1))
        );
        env.run(&["fetch", &env.p("p"), "2"]).fails(7, "Corrupt");
    }
}

/// The seqs of a run's envelopes.
fn seqs(run: &Run) -> Vec<u64> {
    run.records()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

/// Flips the lowest bit of the byte at `at` of the file, in place.
fn flip(path: &Path, at: usize) {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at as u64).unwrap();
    byte[0] ^= 0x01;
    file.write_all_at(&byte, at as u64).unwrap();
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
