//! `plex feed`: receipts, stored bytes, tags, input sources, bad lines;
//! against local and remote pools alike, but for pools given by path (a
//! local file by definition).

use std::fs;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::common::{numbered, Env, Run};

/// The data of every message held, in order.
fn all_data(env: &Env, pool: &str) -> Vec<Value> {
    let run = env.ok(&["follow", &env.p(pool), "--no-follow"]);
    run.records()
        .into_iter()
        .map(|m| m["data"].clone())
        .collect()
}

local_and_remote! {
    fn one_message_from_the_argument(env) {
        env.create("p", "64K");
        let run = env.ok(&[
            "feed",
            &env.p("p"),
            r#"{"b": [1, 2.50], "a": "x y"}"#,
            "--tag",
            "t1",
            "--tag",
            "t2",
        ]);
        let receipts = run.records();
        assert_eq!(receipts.len(), 1);
        let receipt = receipts[0].as_object().unwrap();
        assert_eq!(receipt.len(), 3, "{receipt:?}");
        assert_eq!(receipt["seq"], 1);
        assert_eq!(receipt["tags"], json!(["t1", "t2"]));
        let time = receipt["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 30, "{time}");

        let msg = &env.ok(&["fetch", &env.p("p"), "1"]).records()[0];
        assert_eq!(msg["seq"], 1);
        assert_eq!(msg["time"], time);
        assert_eq!(msg["meta"], json!({"tags": ["t1", "t2"]}));
        // Compacted, but not re-encoded: key order and `2.50` survive.
        let raw = env.ok(&["fetch", &env.p("p"), "1"]).stdout;
        assert!(raw.contains(r#""data":{"b":[1,2.50],"a":"x y"}}"#), "{raw}");
    }
}

local_and_remote! {
    fn json_lines_from_stdin_and_file(env) {
        env.create("p", "1M");
        let receipts = env.feed("p", "{\"n\": 1}\n\n  \n[true]\r\n\"last, no newline\"");
        let seqs: Vec<_> = receipts
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3]);

        let file = env.root().join("in.jsonl");
        fs::write(&file, numbered(500, 10)).unwrap();
        let run = env.ok(&[
            "feed",
            &env.p("p"),
            "--file",
            file.to_str().unwrap(),
            "--durability",
            "flush",
        ]);
        assert_eq!(run.records().len(), 500);
        assert_eq!(run.records()[499]["seq"], 503);
        // No terminal: no progress bar, no summary.
        assert!(run.stderr.is_empty(), "{}", run.stderr);

        let data = all_data(env, "p");
        assert_eq!(
            data[..3],
            [json!({"n": 1}), json!([true]), json!("last, no newline")]
        );
        assert_eq!(data[502], json!({"i": 499, "pad": "xxxxxxxxxx"}));
        // Big numbers are stored exactly as written.
        env.ok(&["feed", &env.p("p"), "123456789012345678901234567890"]);
        let raw = env.ok(&["fetch", &env.p("p"), "504"]).stdout;
        assert!(
            raw.contains("\"data\":123456789012345678901234567890}"),
            "{raw}"
        );

        let missing = env.root().join("nope.jsonl");
        env.run(&["feed", &env.p("p"), "--file", missing.to_str().unwrap()])
            .fails(3, "NotFound");
    }
}

local_and_remote! {
    fn bad_lines_stop_at_the_first(env) {
        env.create("p", "64K");
        let input = "{\"ok\":1}\n{\"ok\":2}\n{\"broken\":\n{\"ok\":4}\n";
        let run = env.run_stdin(&["feed", &env.p("p")], input.as_bytes());
        let err = run.fails(2, "Usage");
        assert_eq!(err["line"], 3);
        let message = err["message"].as_str().unwrap();
        assert!(
            message.starts_with("line 3: invalid JSON at column"),
            "{message}"
        );
        // Receipts of the lines before the bad one, and nothing after.
        assert_eq!(run.records().len(), 2);
        assert_eq!(all_data(env, "p"), [json!({"ok": 1}), json!({"ok": 2})]);
    }
}

local_and_remote! {
    fn bad_lines_are_skipped_and_reported(env) {
        env.create("p", "64K");
        let mut input = b"1\nnot json\n2\n".to_vec();
        input.extend_from_slice(b"\"\xff\"\n3\n{\"a\":1,}\n4");
        let run = env.run_stdin(&["feed", &env.p("p"), "--errors", "skip"], &input);
        // The command line was right (not Usage, 2); some input was not.
        assert_eq!(run.code, 65, "skipped lines make the exit code 65: {run:?}");
        let errors = run.errors();
        let lines: Vec<_> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
        assert_eq!(lines, [2, 4, 6]);
        assert!(errors.iter().all(|e| e["kind"] == "Usage"));
        assert!(errors[1]["message"].as_str().unwrap().contains("UTF-8"));
        assert_eq!(run.records().len(), 4);
        assert_eq!(
            all_data(env, "p"),
            [json!(1), json!(2), json!(3), json!(4)]
        );

        // Nothing to skip: success.
        let run = env.run_stdin(&["feed", &env.p("p"), "--errors", "skip"], b"5\n6\n");
        assert_eq!((run.code, run.records().len()), (0, 2), "{run:?}");
        assert!(run.stderr.is_empty(), "{run:?}");
        // The status is documented where users look.
        let help = env.ok(&["feed", "--help"]).stdout;
        assert!(help.contains("exit code is then 65"), "{help}");
        let help = env.ok(&["--help"]).stdout;
        assert!(help.contains("65 feed --errors skip skipped"), "{help}");
    }
}

local_and_remote! {
    fn lines_too_large_for_the_pool(env) {
        env.create("small", "12K");
        let max = env.ok(&["pool", "info", &env.p("small")]).records()[0]["max_message"]
            .as_u64()
            .unwrap() as usize;
        let huge = format!("\"{}\"\n", "x".repeat(max + 10));
        // Fits the line bound but not with the frame header: the store refuses.
        let near = format!("\"{}\"\n", "y".repeat(max - 10));
        let input = format!("1\n{huge}{near}2\n");
        let run = env.run_stdin(&["feed", &env.p("small"), "--errors", "skip"], input.as_bytes());
        assert_eq!(run.code, 65, "{run:?}");
        let errors = run.errors();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            (errors[0]["line"].as_u64(), errors[1]["line"].as_u64()),
            (Some(2), Some(3))
        );
        assert!(errors[0]["message"].as_str().unwrap().contains("exceeds"));
        assert_eq!(all_data(env, "small"), [json!(1), json!(2)]);

        env.run(&["feed", &env.p("small"), &"7".repeat(max)])
            .fails(2, "Usage");
    }
}

local_and_remote! {
    fn the_largest_message_a_pool_takes_and_one_larger(env) {
        // Over the 16 MiB a server takes in one append record: remotely,
        // that is the pool's largest message, and a larger line is refused
        // as a local pool refuses one over its own limit.
        env.create("big", "20M");
        let max = env.ok(&["pool", "info", &env.p("big")]).records()[0]["max_message"]
            .as_u64()
            .unwrap() as usize;
        if env.is_local() {
            assert!(max > 16 << 20, "{max}");
        } else {
            assert_eq!(max, 16 << 20);
        }
        let fits = format!("\"{}\"\n", "y".repeat(max - 64));
        let huge = format!("\"{}\"\n", "x".repeat(max + 10));
        // The last line: locally, the one that fits fills the ring.
        let input = format!("1\n{huge}{fits}");
        let run = env.run_stdin(&["feed", &env.p("big"), "--errors", "skip"], input.as_bytes());
        assert_eq!(run.code, 65, "{}", run.stderr);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert_eq!((errors[0]["kind"].as_str(), errors[0]["line"].as_u64()), (Some("Usage"), Some(2)));
        assert!(errors[0]["message"].as_str().unwrap().contains("exceeds this pool's largest message"));
        let seqs: Vec<_> = run.records().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2]);
        let fetched = &env.ok(&["fetch", &env.p("big"), "2"]).records()[0];
        assert_eq!(fetched["data"].as_str().unwrap().len(), max - 64);
    }
}

local_and_remote! {
    fn bad_json_argument(env) {
        env.create("p", "64K");
        let err = env.run(&["feed", &env.p("p"), "{oops}"]).fails(2, "Usage");
        assert!(err.get("line").is_none());
        assert!(
            err["message"].as_str().unwrap().contains("column 2"),
            "{err}"
        );
        env.run(&["feed", &env.p("p"), ""]).fails(2, "Usage");
        env.run(&["feed", &env.p("p"), "1", "--file", "x"])
            .fails(2, "Usage");
        assert_eq!(env.ok(&["pool", "info", &env.p("p")]).records()[0]["messages"], 0);
    }
}

local_and_remote! {
    fn create_makes_the_first_command_work_on_every_run(env) {
        // The README's first command, twice, with no pool directory yet.
        for seq in [1, 2] {
            let run = env.ok(&["feed", &env.p("demo"), "--create", r#"{"hello":"pools"}"#]);
            assert_eq!(run.records()[0]["seq"], seq, "{run:?}");
        }
        assert_eq!(all_data(env, "demo"), vec![json!({"hello": "pools"}); 2]);
        // Created like `plex pool create` would, with its default size.
        env.ok(&["pool", "create", &env.p("plain")]);
        let info = |pool| env.ok(&["pool", "info", &env.p(pool)]).records()[0].clone();
        assert_eq!(info("demo")["size"], info("plain")["size"]);
        assert_eq!(info("demo")["size"], 64 << 20);

        // Created with --create-size, from stdin too.
        let run = env.run_stdin(
            &["feed", &env.p("sized"), "--create", "--create-size", "128K"],
            b"1\n2\n",
        );
        assert_eq!((run.code, run.records().len()), (0, 2), "{run:?}");
        assert_eq!(info("sized")["size"], 128 << 10);
    }
}

/// Local only: a pool given by path is a file of this machine.
#[test]
fn create_makes_a_pool_given_by_path() {
    let env = Env::new();
    {
        // A pool given by path, in a directory that exists or not.
        let file = env.root().join("here.pool");
        env.ok(&["feed", file.to_str().unwrap(), "--create", "7"]);
        assert_eq!(
            env.ok(&["fetch", file.to_str().unwrap(), "1"]).records()[0]["data"],
            7
        );
        let nowhere = env.root().join("no/such/dir/p.pool");
        let err = env
            .run(&["feed", nowhere.to_str().unwrap(), "--create", "7"])
            .fails(3, "NotFound");
        assert!(err["hint"].as_str().unwrap().contains("directory"), "{err}");
    }
}

local_and_remote! {
    fn create_feeds_an_existing_pool_as_it_is_unless_another_size_is_asked(env) {
        env.create("small", "64K");
        // No size asked: whatever the pool's size, it is fed.
        env.ok(&["feed", &env.p("small"), "--create", "1"]);
        // The size asked is the pool's: fed.
        env.ok(&["feed", &env.p("small"), "--create", "--create-size", "64K", "2"]);
        // Another size asked: refused, and nothing is fed.
        let run = env.run_stdin(
            &["feed", &env.p("small"), "--create", "--create-size", "1M"],
            b"3\n",
        );
        let err = run.fails(4, "AlreadyExists");
        assert!(run.stdout.is_empty(), "{run:?}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("65536") && message.contains("1048576"),
            "{err}"
        );
        assert!(err["path"].as_str().unwrap().ends_with("small.plex"));
        assert!(
            err["hint"].as_str().unwrap().contains("--create-size"),
            "{err}"
        );
        assert_eq!(all_data(env, "small"), [json!(1), json!(2)]);
        let info = env.ok(&["pool", "info", &env.p("small")]).records()[0].clone();
        assert_eq!(info["size"], 64 << 10);
    }
}

local_and_remote! {
    fn create_refusals_create_nothing(env) {
        // --create-size means nothing without --create.
        let err = env
            .run(&["feed", &env.p("a"), "--create-size", "1M", "1"])
            .fails(2, "Usage");
        assert!(
            err["message"].as_str().unwrap().contains("--create"),
            "{err}"
        );
        // A bad JSON argument is refused before the pool is created.
        env.run(&["feed", &env.p("b"), "--create", "{oops}"])
            .fails(2, "Usage");
        // A size the store refuses.
        let err = env
            .run(&["feed", &env.p("c"), "--create", "--create-size", "5000", "1"])
            .fails(2, "Usage");
        assert!(err["message"].as_str().unwrap().contains("4096"), "{err}");
        for pool in ["a", "b", "c"] {
            assert!(!env.pools().join(format!("{pool}.plex")).exists(), "{pool}");
        }
    }
}

local_and_remote! {
    fn concurrent_creating_feeds_share_one_pool(env) {
        let children: Vec<_> = (0..8)
            .map(|i| {
                env.cmd()
                    .args(["feed", env.p("race").as_str(), "--create", &i.to_string()])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn plex")
            })
            .collect();
        let mut seqs: Vec<u64> = children
            .into_iter()
            .map(|child| {
                let run = Run::from(child.wait_with_output().expect("wait for plex"));
                assert_eq!(run.code, 0, "{run:?}");
                run.records()[0]["seq"].as_u64().unwrap()
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=8).collect::<Vec<u64>>());
        let mut data: Vec<u64> = all_data(env, "race")
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        data.sort_unstable();
        assert_eq!(data, (0..8).collect::<Vec<u64>>());
    }
}
