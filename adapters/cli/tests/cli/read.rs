//! `plex fetch` and `plex follow`, across processes too; against local and
//! remote pools alike, but for data written by another tool straight into
//! the pool file (local by definition).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use plex_store::Pool;
use serde_json::{json, Value};

use crate::common::{feed_and_wait, numbered, Env, Run};

fn seqs(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

local_and_remote! {
    fn fetch_prints_one_envelope(env) {
        env.create("p", "64K");
        env.feed("p", "{\"a\":1}\n{\"a\":2}\n");
        let run = env.ok(&["fetch", &env.p("p"), "2"]);
        let records = run.records();
        assert_eq!(records.len(), 1);
        let env_keys: Vec<_> = records[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(env_keys, ["data", "meta", "seq", "time"]);
        assert_eq!(records[0]["data"], json!({"a": 2}));

        let err = env.run(&["fetch", &env.p("p"), "3"]).fails(3, "NotFound");
        assert_eq!(err["seq"], 3);
        assert!(err["hint"].as_str().unwrap().contains("newest seq is 2"));
        env.run(&["fetch", &env.p("p"), "0"]).fails(3, "NotFound");
    }
}

local_and_remote! {
    /// A message over the remote client's default record limit (64 MiB) is
    /// read whole, as a local read takes any message its pool holds.
    fn a_message_over_64_mib_is_fetched_and_followed(env) {
        env.create("big", "80M");
        let data = format!("\"{}\"", "x".repeat((64 << 20) + 1000));
        let pool = Pool::open(env.pools().join("big.plex")).unwrap();
        pool.append(&["big"], data.as_bytes()).unwrap();
        drop(pool);
        let len = |records: &[Value]| records[0]["data"].as_str().map(str::len);
        let fetched = env.ok(&["fetch", &env.p("big"), "1"]).records();
        assert_eq!(len(&fetched), Some(data.len() - 2));
        let followed = env.ok(&["follow", &env.p("big"), "--no-follow"]).records();
        assert_eq!((followed.len(), len(&followed)), (1, Some(data.len() - 2)));
    }
}

/// Local only: another tool writes straight into the pool file.
#[test]
fn non_json_data_prints_as_a_string() {
    let env = Env::new();
    env.create("raw", "64K");
    let pool = Pool::open(env.pools().join("raw.plex")).unwrap();
    pool.append(&["x"], b"plain text").unwrap();
    pool.append(&[], b"\xff\x00\x01").unwrap();
    pool.append(&[], b"{\n  \"multi\": \"line\"\n}\n").unwrap();
    drop(pool);
    let records = env.ok(&["follow", "raw", "--no-follow"]).records();
    assert_eq!(records[0]["data"], "plain text");
    assert_eq!(
        records[0]["meta"],
        json!({"tags": ["x"], "encoding": "text"})
    );
    assert_eq!(records[1]["data"], "/wAB");
    assert_eq!(records[1]["meta"]["encoding"], "base64");
    // Valid JSON over several lines is compacted onto the envelope's line.
    assert_eq!(records[2]["data"], json!({"multi": "line"}));
    assert!(records[2]["meta"].get("encoding").is_none());
}

local_and_remote! {
    fn follow_starting_points(env) {
        env.create("p", "64K");
        env.feed("p", &numbered(5, 0));
        let all = env.ok(&["follow", &env.p("p"), "--no-follow"]).records();
        assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
        assert_eq!(all[4]["data"], json!({"i": 4, "pad": ""}));

        let tail = env
            .ok(&["follow", &env.p("p"), "--tail", "2", "--no-follow"])
            .records();
        assert_eq!(seqs(&tail), [4, 5]);
        let tail = env
            .ok(&["follow", &env.p("p"), "--tail", "99", "--no-follow"])
            .records();
        assert_eq!(seqs(&tail), [1, 2, 3, 4, 5]);
        let since = env
            .ok(&["follow", &env.p("p"), "--since", "3", "--no-follow"])
            .records();
        assert_eq!(seqs(&since), [3, 4, 5]);
        let one = env.ok(&["follow", &env.p("p"), "--since", "2", "--one"]).records();
        assert_eq!(seqs(&one), [2]);
        // --one waits for the next message when there is none yet.
        let run = env.run(&["follow", &env.p("p"), "--one", "--timeout", "100ms"]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (124, "", "")
        );
    }
}

local_and_remote! {
    fn follow_timeout_exits_124_after_printing_what_came(env) {
        env.create("p", "64K");
        env.feed("p", &numbered(3, 0));
        let run = env.run(&["follow", &env.p("p"), "--tail", "2", "--timeout", "200ms"]);
        assert_eq!(run.code, 124, "{run:?}");
        assert_eq!(seqs(&run.records()), [2, 3]);
        assert!(run.stderr.is_empty());
        let run = env.run(&["follow", &env.p("p"), "--timeout", "0s"]);
        assert_eq!((run.code, run.stdout.as_str()), (124, ""));
    }
}

local_and_remote! {
    fn follower_in_another_process_sees_a_feed(env) {
        env.create("live", "64K");
        env.feed("live", "\"before\"\n");
        let mut follower = env
            .cmd()
            .args(["follow", env.p("live").as_str(), "--one", "--timeout", "30s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The follower registers as a futex waiter only once its cursor is
        // placed at the end and it found nothing to print: after that, a feed
        // must wake it. Each check is a full `plex pool info` run; the deadline
        // only turns a bug into a failure instead of a hang.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = &env.ok(&["pool", "info", &env.p("live")]).records()[0];
            if info["waiters"].as_u64() > Some(0) {
                break;
            }
            if let Some(status) = follower.try_wait().unwrap() {
                panic!("the follower exited early: {status}");
            }
            assert!(Instant::now() < deadline, "the follower never waited");
        }
        let receipts = env.feed("live", "{\"hello\":\"follower\"}\n");
        let run = Run::from(follower.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
        let got = run.records();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["seq"], 2);
        assert_eq!(got[0]["time"], receipts[0]["time"]);
        assert_eq!(got[0]["data"], json!({"hello": "follower"}));
    }
}

local_and_remote! {
    fn follower_streams_many_messages_from_a_concurrent_feed(env) {
        env.create("p", "1M");
        let mut follower = env
            .cmd()
            .args(["follow", env.p("p").as_str(), "--since", "1", "--timeout", "30s"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let feeder = env
            .cmd()
            .args(["feed", env.p("p").as_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert_eq!(feed_and_wait(feeder, numbered(300, 20).as_bytes()).code, 0);
        let mut seen = Vec::new();
        for line in BufReader::new(follower.stdout.take().unwrap()).lines() {
            let seq = serde_json::from_str::<Value>(&line.unwrap()).unwrap()["seq"]
                .as_u64()
                .unwrap();
            seen.push(seq);
            if seq == 300 {
                break;
            }
        }
        // The follower is now waiting for seq 301.
        follower.kill().unwrap();
        follower.wait().unwrap();
        assert_eq!(seen, (1..=300).collect::<Vec<_>>());
    }
}

local_and_remote! {
    fn retention_gaps_are_reported_and_skipped(env) {
        env.create("tiny", "12K");
        env.feed("tiny", &numbered(200, 50));
        let info = &env.ok(&["pool", "info", &env.p("tiny")]).records()[0];
        let oldest = info["oldest"].as_u64().unwrap();
        assert!(oldest > 1, "the ring wrapped: {info}");

        let run = env.run(&["follow", &env.p("tiny"), "--since", "1", "--no-follow"]);
        let err = run.fails(9, "RetentionGap");
        assert_eq!(err["seq"], 1);
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains(&format!("1..{oldest}")),
            "{err}"
        );
        let got = seqs(&run.records());
        assert_eq!(got, (oldest..=200).collect::<Vec<_>>());

        // The gap outranks a timeout in the exit code.
        let run = env.run(&["follow", &env.p("tiny"), "--since", "1", "--timeout", "50ms"]);
        run.fails(9, "RetentionGap");
        assert_eq!(run.records().len() as u64, 201 - oldest);

        // An overwritten seq is simply not there any more.
        let err = env.run(&["fetch", &env.p("tiny"), "1"]).fails(3, "NotFound");
        assert!(
            err["hint"].as_str().unwrap().contains("overwritten"),
            "{err}"
        );
    }
}

local_and_remote! {
    fn a_closed_stdout_ends_quietly(env) {
        env.create("p", "1M");
        env.feed("p", &numbered(2000, 100));
        let mut child = env
            .cmd()
            .args(["follow", env.p("p").as_str(), "--no-follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let run = child.wait_with_output().unwrap();
        assert_eq!(run.status.code(), Some(0));
        assert!(run.stderr.is_empty());
    }
}
