//! Tests that need several processes: crash injection, eight concurrent
//! writer processes with concurrent readers, and a follower in another
//! process woken by an append.
//!
//! This binary has no libtest harness: run with `PLEX_STORE_CHILD=<role>` it
//! plays a child process instead of running the tests, so children are
//! plain re-executions of `current_exe()`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plex_store::{Durability, Options, Pool, Seq, Start};

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    ("crash_at_every_append_phase", crash_at_every_append_phase),
    (
        "eight_writer_processes_with_readers",
        eight_writer_processes_with_readers,
    ),
    (
        "follower_in_other_process_is_woken",
        follower_in_other_process_is_woken,
    ),
    (
        "killed_followers_leave_no_registration",
        killed_followers_leave_no_registration,
    ),
    (
        "killed_writer_makes_the_next_open_walk",
        killed_writer_makes_the_next_open_walk,
    ),
    (
        "full_filesystem_is_an_error_never_a_fault",
        full_filesystem_is_an_error_never_a_fault,
    ),
];

fn main() {
    if let Ok(role) = std::env::var("PLEX_STORE_CHILD") {
        child(&role);
        return;
    }
    // Accept libtest-style invocations: flags are ignored, a bare word filters.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let list = std::env::args().any(|a| a == "--list");
    let mut ran = 0;
    for (name, test) in TESTS {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        if list {
            println!("{name}: test");
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
        ran += 1;
    }
    if !list {
        println!("\ntest result: ok. {ran} passed");
    }
}

// ---------------------------------------------------------------- children

/// Entry point of a child process; its role and arguments come from the
/// environment.
fn child(role: &str) {
    let path = PathBuf::from(env("PLEX_STORE_PATH"));
    match role {
        "append" => {
            let writer: u64 = env("PLEX_STORE_WRITER").parse().unwrap();
            let count: u64 = env("PLEX_STORE_COUNT").parse().unwrap();
            let durability = match env("PLEX_STORE_DURABILITY").as_str() {
                "flush" => Durability::Flush,
                _ => Durability::Fast,
            };
            let pool = Pool::open_with(&path, Options::new().durability(durability)).unwrap();
            let mut out = std::io::stdout().lock();
            for i in 0..count {
                let seq = pool.append(&["w"], payload(writer, i).as_bytes()).unwrap();
                // An acknowledgement the parent may rely on after a crash.
                writeln!(out, "{} {writer} {i}", seq.0).unwrap();
                out.flush().unwrap();
            }
        }
        "read" => {
            let total: u64 = env("PLEX_STORE_COUNT").parse().unwrap();
            let pool = Pool::open(&path).unwrap();
            let mut cursor = pool.cursor(Start::Seq(Seq(1)));
            let mut last = 0;
            let mut per_writer = BTreeMap::new();
            while last < total {
                let msg = cursor
                    .next_timeout(Duration::from_secs(60))
                    .unwrap()
                    .expect("stalled");
                assert_eq!(msg.seq.0, last + 1, "reader saw a gap or reorder");
                let (writer, i) = parse(&msg.data);
                let prev = per_writer.insert(writer, i);
                assert_eq!(prev.map_or(0, |p| p + 1), i, "writer {writer} out of order");
                last = msg.seq.0;
            }
            println!("read {last}");
        }
        "follow" => {
            let options = Options::new().poll_interval(Duration::from_secs(60));
            let pool = Pool::open_with(&path, options).unwrap();
            let mut cursor = pool.cursor(Start::End);
            println!("ready {}", cursor.next_seq());
            std::io::stdout().flush().unwrap();
            match cursor.next_timeout(Duration::from_secs(60)).unwrap() {
                Some(msg) => println!("got {} {}", msg.seq, String::from_utf8_lossy(&msg.data)),
                None => println!("timeout"),
            }
        }
        "fullfs" => full_filesystem_child(&path),
        other => panic!("unknown child role {other}"),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn payload(writer: u64, i: u64) -> String {
    format!("w{writer}-{i}")
}

fn parse(data: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(data).expect("payload not utf-8");
    let (w, i) = text
        .strip_prefix('w')
        .and_then(|t| t.split_once('-'))
        .expect("bad payload");
    (w.parse().unwrap(), i.parse().unwrap())
}

fn spawn(role: &str, path: &Path, vars: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("PLEX_STORE_CHILD", role)
        .env("PLEX_STORE_PATH", path)
        .env_remove("PLEX_STORE_FAILPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

// ------------------------------------------------------------------- tests

/// A child appending with `Flush` is SIGKILLed at each phase of an append
/// (and of its sync). The pool must reopen and validate, keep every
/// acknowledged message, and keep seqs strictly monotonic.
fn crash_at_every_append_phase() {
    let phases = [
        "before_frame",
        "mid_payload",
        "before_publish",
        "after_publish",
        "before_sync",
        "mid_sync",
    ];
    for phase in phases {
        for nth in [1u64, 9] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crash.pool");
            // A 16 KiB ring, pre-filled past wrapping so the crash lands
            // while frames are being evicted.
            let pool = Pool::create(&path, 8192 + 16384, Options::new().index_slots(64)).unwrap();
            for i in 0..100 {
                pool.append(&["pre"], &[i as u8; 200]).unwrap();
            }
            drop(pool);

            let mut child = spawn(
                "append",
                &path,
                &[
                    ("PLEX_STORE_WRITER", "1".into()),
                    ("PLEX_STORE_COUNT", "40".into()),
                    ("PLEX_STORE_DURABILITY", "flush".into()),
                    ("PLEX_STORE_FAILPOINT", format!("{phase}:{nth}")),
                ],
            );
            let acked: Vec<(u64, u64)> = BufReader::new(child.stdout.take().unwrap())
                .lines()
                .map(|l| {
                    let l = l.unwrap();
                    let mut f = l.split(' ').map(|x| x.parse::<u64>().unwrap());
                    let seq = f.next().unwrap();
                    let _writer = f.next();
                    (seq, f.next().unwrap())
                })
                .collect();
            let status = child.wait().unwrap();
            assert_eq!(
                status.signal(),
                Some(9),
                "{phase}:{nth} child was not killed: {status}"
            );
            assert_eq!(
                acked.len() as u64,
                nth - 1,
                "{phase}:{nth} acks before the crash"
            );

            let bytes = std::fs::read(&path).unwrap();
            plex_store::check_bytes(&bytes).unwrap_or_else(|e| panic!("{phase}:{nth}: {e}"));
            let pool = Pool::open(&path).unwrap_or_else(|e| panic!("{phase}:{nth}: {e}"));
            let info = pool.info();
            for &(seq, i) in &acked {
                let msg = pool
                    .get(Seq(seq))
                    .unwrap_or_else(|e| panic!("{phase}:{nth} lost {seq}: {e}"));
                assert_eq!(msg.data, payload(1, i).as_bytes());
            }
            let last_acked = acked.last().map_or(100, |a| a.0);
            assert!(info.newest.0 >= last_acked, "{phase}:{nth}");
            // Everything held is valid and gapless, and new seqs continue.
            let mut cursor = pool.cursor(Start::Oldest);
            let mut expect = info.oldest.0;
            while let Some(msg) = cursor.try_next().unwrap() {
                assert_eq!(msg.seq.0, expect);
                expect += 1;
            }
            assert_eq!(expect, info.newest.0 + 1);
            let next = pool.append(&[], b"after").unwrap();
            assert_eq!(next.0, info.newest.0 + 1, "{phase}:{nth}");
        }
    }
}

/// 8 writer processes append 10,000 messages each while 2 reader processes
/// follow: 80,000 unique gapless seqs, each writer's messages in order.
fn eight_writer_processes_with_readers() {
    const WRITERS: u64 = 8;
    const EACH: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multi.pool");
    Pool::create(&path, 8 << 20, Options::new().index_slots(1 << 16)).unwrap();
    let total = (WRITERS * EACH).to_string();
    let readers: Vec<Child> = (0..2)
        .map(|_| spawn("read", &path, &[("PLEX_STORE_COUNT", total.clone())]))
        .collect();
    let writers: Vec<Child> = (0..WRITERS)
        .map(|w| {
            spawn(
                "append",
                &path,
                &[
                    ("PLEX_STORE_WRITER", w.to_string()),
                    ("PLEX_STORE_COUNT", EACH.to_string()),
                    ("PLEX_STORE_DURABILITY", "fast".into()),
                ],
            )
        })
        .collect();
    let mut acked = BTreeMap::new();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "writer failed: {}", out.status);
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            assert!(
                acked.insert(f[0], (f[1], f[2])).is_none(),
                "seq {} acked twice",
                f[0]
            );
        }
    }
    assert_eq!(acked.len() as u64, WRITERS * EACH);
    assert_eq!(acked.keys().next(), Some(&1));
    assert_eq!(acked.keys().last(), Some(&(WRITERS * EACH)));
    for r in readers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "reader failed: {}", out.status);
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            format!("read {total}")
        );
    }
    let pool = Pool::open(&path).unwrap();
    let mut cursor = pool.cursor(Start::Oldest);
    let mut next_i = BTreeMap::new();
    for seq in 1..=WRITERS * EACH {
        let msg = cursor.try_next().unwrap().unwrap();
        assert_eq!(msg.seq, Seq(seq));
        let (w, i) = parse(&msg.data);
        assert_eq!(acked[&seq], (w, i));
        let expect = next_i.entry(w).or_insert(0);
        assert_eq!(*expect, i, "writer {w} out of order at seq {seq}");
        *expect += 1;
    }
    assert!(cursor.try_next().unwrap().is_none());
}

/// A follower blocked in another process (fallback poll set to a minute)
/// is woken by an append through the futex broadcast.
fn follower_in_other_process_is_woken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    let mut child = spawn("follow", &path, &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready 1");
    // Wait until the follower has registered for the wake-up, so the
    // append below must wake it through the futex.
    while pool.info().waiters == 0 {
        std::thread::yield_now();
    }
    assert_eq!(pool.append(&[], b"wake up").unwrap(), Seq(1));
    assert_eq!(lines.next().unwrap().unwrap(), "got 1 wake up");
    assert!(child.wait().unwrap().success());
    assert_eq!(pool.info().waiters, 0);
}

/// Three followers in other processes register, then are SIGKILLed while
/// asleep: their registrations die with them. They used to leave
/// `waiters: 3` behind forever (and every writer paying a futex wake).
fn killed_followers_leave_no_registration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed-followers.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    let mut children: Vec<Child> = (0..3).map(|_| spawn("follow", &path, &[])).collect();
    for child in &mut children {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready 1\n");
    }
    while pool.info().waiters < 3 {
        std::thread::yield_now();
    }
    assert_eq!(pool.info().waiters, 3);
    for mut child in children {
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    }
    assert_eq!(pool.info().waiters, 0, "registrations of dead followers");
    // Another handle sees the same, and a new follower counts and wakes.
    assert_eq!(Pool::open_read_only(&path).unwrap().info().waiters, 0);
    let mut child = spawn("follow", &path, &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready 1");
    while pool.info().waiters == 0 {
        std::thread::yield_now();
    }
    assert_eq!(pool.info().waiters, 1);
    assert_eq!(pool.append(&[], b"hello").unwrap(), Seq(1));
    assert_eq!(lines.next().unwrap().unwrap(), "got 1 hello");
    assert!(child.wait().unwrap().success());
    assert_eq!(pool.info().waiters, 0);
}

/// A clean reopen trusts the published state without reading the ring;
/// a writer SIGKILLed mid-append (here: its frame written, not yet
/// published) must still make the next open run the full recovery, which
/// finds and discards the unpublished frame.
fn killed_writer_makes_the_next_open_walk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    for i in 0..3u8 {
        pool.append(&[], &[i; 10]).unwrap();
    }
    drop(pool);
    let pool = Pool::open(&path).unwrap();
    assert!(!pool.recovery().unwrap().walked, "a clean reopen walked");
    drop(pool);

    let mut child = spawn(
        "append",
        &path,
        &[
            ("PLEX_STORE_WRITER", "1".into()),
            ("PLEX_STORE_COUNT", "5".into()),
            ("PLEX_STORE_DURABILITY", "fast".into()),
            ("PLEX_STORE_FAILPOINT", "before_publish:2".into()),
        ],
    );
    let mut acked = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut acked).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    assert_eq!(acked, "4 1 0\n");

    let pool = Pool::open(&path).unwrap();
    let rec = pool.recovery().unwrap();
    assert!(rec.walked, "{rec:?}");
    assert_eq!(rec.discarded, Seq(5)..Seq(6));
    assert_eq!(pool.info().newest, Seq(4));
    assert_eq!(pool.append(&[], b"next").unwrap(), Seq(5));
}

/// Pools on a full filesystem: a 256 KiB tmpfs mounted in a private mount
/// namespace (`unshare -m`, as root; CI runs as root), so nothing outside
/// the child sees it and it vanishes with the child. A sparse pool file
/// would kill the appender with SIGBUS there; a reserved one never faults,
/// and a create or open that cannot get the space fails with `Io`.
fn full_filesystem_is_an_error_never_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .env("PLEX_STORE_CHILD", "fullfs")
        .env("PLEX_STORE_PATH", dir.path())
        .env_remove("PLEX_STORE_FAILPOINT")
        .output()
        .expect("this test needs unshare(1) from util-linux");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {} (signal {:?}; SIGBUS is 7)\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status,
        out.status.signal(),
    );
    assert_eq!(stdout.trim(), "fullfs ok", "stderr:\n{stderr}");
}

/// The child of [`full_filesystem_is_an_error_never_a_fault`], inside its
/// own mount namespace; mounts a small tmpfs over `dir`.
fn full_filesystem_child(dir: &Path) {
    let mount = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "plex-full",
            dir.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        mount.success(),
        "mounting a tmpfs failed ({mount}): this test needs root (CAP_SYS_ADMIN)"
    );
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    // Larger than the filesystem: refused with Io, and no file left behind.
    let err = Pool::create(dir.join("big.pool"), 1 << 20, Options::new()).unwrap_err();
    assert_eq!(err.kind(), plex_store::ErrorKind::Io, "{err}");
    assert!(entries().is_empty(), "left behind: {:?}", entries());

    // A pool that fits, then a filler that takes every remaining block.
    let path = dir.join("p.pool");
    let pool = Pool::create(&path, 128 << 10, Options::new().index_slots(16)).unwrap();
    let filler = dir.join("filler");
    fill(&filler);
    // Around the ring twice: every page of the ring is stored into.
    let data = [7u8; 1000];
    for _ in 0..300 {
        pool.append(&["full"], &data).unwrap();
    }
    let last = pool.info().newest;
    assert_eq!(pool.get(last).unwrap().data, data);
    drop(pool);

    // Blocks punched out of a closed pool (as in a file made sparse by an
    // older build): a writable open must get them back or fail cleanly.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    rustix::fs::fallocate(
        &file,
        rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
        8192,
        64 << 10,
    )
    .unwrap();
    drop(file);
    fill(&dir.join("filler2"));
    let err = Pool::open(&path).unwrap_err();
    assert_eq!(err.kind(), plex_store::ErrorKind::Io, "{err}");
    std::fs::remove_file(dir.join("filler2")).unwrap();
    let pool = Pool::open(&path).unwrap();
    fill(&dir.join("filler2"));
    for _ in 0..300 {
        pool.append(&["full"], &data).unwrap();
    }
    drop(pool);
    std::fs::remove_file(&filler).unwrap();
    println!("fullfs ok");
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = [0xAAu8; 4096];
    loop {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}
