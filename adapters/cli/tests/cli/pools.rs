//! `plex pool …`, pool references, `--dir` and the default directory.
//!
//! The pool commands run against local and remote pools alike. Local only:
//! paths, `--dir` and the default directory (how this machine finds pool
//! files), and what damaged, unreadable, unsyncable or foreign files do
//! (made by changing files under a pool, and checked by the user running
//! plex).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::Env;

local_and_remote! {
    fn create_info_list_delete(env) {
        let run = env.ok(&["pool", "create", &env.p("alpha"), &env.p("beta"), "--size", "64K"]);
        let created = run.records();
        assert_eq!(created.len(), 2);
        assert_eq!(created[0]["name"], "alpha");
        assert_eq!(created[0]["size"], 65536);
        assert_eq!(created[0]["messages"], 0);
        let path = env.pools().join("alpha.plex");
        assert_eq!(created[0]["path"], path.to_str().unwrap());
        assert!(path.is_file());

        let info = env.ok(&["pool", "info", &env.p("beta")]).records();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0]["name"], "beta");
        assert_eq!(
            (info[0]["oldest"].as_u64(), info[0]["newest"].as_u64()),
            (Some(1), Some(0))
        );
        assert!(info[0]["max_message"].as_u64().unwrap() > 0);
        assert!(info[0]["index_capacity"].as_u64().unwrap() > 0);

        // Another file in the directory is not a pool.
        fs::write(env.pools().join("notes.txt"), "hi").unwrap();
        let listed = env.list().records();
        let names: Vec<_> = listed.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["alpha", "beta"]);

        let deleted = env.ok(&["pool", "delete", &env.p("alpha"), &env.p("beta")]).records();
        assert_eq!(deleted[1]["name"], "beta");
        assert!(!path.exists());
        assert!(env.list().stdout.is_empty());
    }
}

local_and_remote! {
    fn create_options_and_refusals(env) {
        let made = env.ok(&[
            "pool",
            "create",
            &env.p("p"),
            "--size",
            "1M",
            "--index-capacity",
            "100",
        ]);
        assert_eq!(made.records()[0]["index_capacity"], 100);
        assert_eq!(made.records()[0]["size"], 1 << 20);

        let err = env
            .run(&["pool", "create", &env.p("p"), "--size", "1M"])
            .fails(4, "AlreadyExists");
        assert!(err["path"].as_str().unwrap().ends_with("p.plex"));
        let delete = format!("plex pool delete {}", env.p("p"));
        assert!(err["hint"].as_str().unwrap().contains(&delete), "{err}");
        // All names are checked before any is created.
        env.run(&["pool", "create", &env.p("q"), &env.p("p")])
            .fails(4, "AlreadyExists");
        assert!(!env.pools().join("q.plex").exists());

        for size in ["12X", "1.5M", "", "M"] {
            env.run(&["pool", "create", &env.p("r"), "--size", size])
                .fails(2, "Usage");
        }
        // Parsed, but not a multiple of 4096: the store refuses.
        let err = env
            .run(&["pool", "create", &env.p("r"), "--size", "5000"])
            .fails(2, "Usage");
        assert!(err["message"].as_str().unwrap().contains("4096"), "{err}");
        env.run(&["pool", "create", &env.p("r"), "--index-capacity", "0"])
            .fails(2, "Usage");
        assert!(!env.pools().join("r.plex").exists());
    }
}

local_and_remote! {
    fn names_cannot_escape_the_directory(env) {
        for bad in ["..", ".", ""] {
            let err = env
                .run(&["pool", "create", &env.p(bad), "--size", "64K"])
                .fails(2, "Usage");
            assert!(
                err["message"]
                    .as_str()
                    .unwrap()
                    .contains("invalid pool name"),
                "{err}"
            );
            env.run(&["fetch", &env.p(bad), "1"]).fails(2, "Usage");
        }
        // Nothing was created anywhere, not even the directory (which a
        // server creates when it starts).
        if env.is_local() {
            assert!(!env.pools().exists());
            assert_eq!(fs::read_dir(env.root()).unwrap().count(), 0);
        }
    }
}

#[test]
fn paths_name_pool_files_anywhere() {
    let env = Env::new();
    let file = env.root().join("elsewhere.pool");
    let path = file.to_str().unwrap();
    let made = env.ok(&["pool", "create", path, "--size", "64K"]).records();
    assert_eq!(made[0]["path"], path);
    assert!(made[0].get("name").is_none());
    env.ok(&["feed", path, "42"]);
    assert_eq!(env.ok(&["fetch", path, "1"]).records()[0]["data"], 42);
    assert_eq!(env.ok(&["pool", "info", path]).records()[0]["messages"], 1);
    // Not inside the pool directory, so not listed.
    assert!(env.ok(&["pool", "list"]).stdout.is_empty());
    env.ok(&["pool", "delete", path]);
    assert!(!file.exists());
}

#[test]
fn dir_option_before_or_after_the_subcommand() {
    let env = Env::new();
    let custom = env.root().join("custom");
    let dir = custom.to_str().unwrap();
    env.ok(&["--dir", dir, "pool", "create", "a", "--size", "64K"]);
    env.ok(&["pool", "create", "b", "--size", "64K", "--dir", dir]);
    env.ok(&["pool", "--dir", dir, "create", "c", "--size", "64K"]);
    assert!(custom.join("a.plex").is_file());
    assert!(custom.join("b.plex").is_file());
    assert!(custom.join("c.plex").is_file());
    env.ok(&["feed", "--dir", dir, "a", "{}"]);
    env.ok(&["--dir", dir, "fetch", "a", "1"]);
    let names: Vec<_> = env.ok(&["pool", "list", "--dir", dir]).records();
    assert_eq!(names.len(), 3);
    // PLEX_DIR (the pool directory of this Env) is untouched.
    assert!(!env.pools().exists());
}

#[test]
fn default_directory_follows_xdg_then_home() {
    let env = Env::new();
    let xdg = env.root().join("xdg");
    let run = env
        .cmd()
        .env_remove("PLEX_DIR")
        .env("XDG_DATA_HOME", &xdg)
        .args(["pool", "create", "x", "--size", "64K"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(xdg.join("plex/pools/x.plex").is_file());

    let run = env
        .cmd()
        .env_remove("PLEX_DIR")
        .args(["pool", "create", "h", "--size", "64K"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(env
        .root()
        .join("home/.local/share/plex/pools/h.plex")
        .is_file());
}

local_and_remote! {
    fn missing_pools(env) {
        let err = env.run(&["pool", "info", &env.p("ghost")]).fails(3, "NotFound");
        assert!(err["path"].as_str().unwrap().ends_with("ghost.plex"));
        let create = format!("plex pool create {}", env.p("ghost"));
        assert!(err["hint"].as_str().unwrap().contains(&create), "{err}");
        env.run(&["fetch", &env.p("ghost"), "1"]).fails(3, "NotFound");
        env.run(&["follow", &env.p("ghost"), "--no-follow"])
            .fails(3, "NotFound");
        env.run(&["feed", &env.p("ghost"), "1"]).fails(3, "NotFound");
        env.run(&["pool", "delete", &env.p("ghost")]).fails(3, "NotFound");
    }
}

local_and_remote! {
    fn list_reports_unreadable_pools_and_goes_on(env) {
        env.create("good", "64K");
        fs::write(env.pools().join("junk.plex"), vec![b'j'; 16384]).unwrap();
        env.create("later", "64K");
        let run = env.list_run();
        assert_eq!(run.code, 7, "{run:?}");
        let names: Vec<_> = run
            .records()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["good", "later"]);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "{run:?}");
        assert_eq!(errors[0]["kind"], "Corrupt");
        assert!(errors[0]["path"].as_str().unwrap().ends_with("junk.plex"));
    }
}

local_and_remote! {
    fn delete_checks_every_pool_before_deleting_any(env) {
        env.create("a", "64K");
        env.create("b", "64K");
        let err = env
            .run(&["pool", "delete", &env.p("a"), &env.p("ghost"), &env.p("b")])
            .fails(3, "NotFound");
        assert!(err["path"].as_str().unwrap().ends_with("ghost.plex"));
        assert!(err["hint"].as_str().unwrap().contains("plex pool list"));
        fs::write(env.pools().join("notes.plex"), "not a pool").unwrap();
        let err = env
            .run(&["pool", "delete", &env.p("a"), &env.p("notes")])
            .fails(2, "Usage");
        assert!(err["path"].as_str().unwrap().ends_with("notes.plex"));
        assert!(err["hint"].as_str().unwrap().contains("rm"));
        // Nothing was deleted.
        let listed = env.list_run().records();
        let names: Vec<_> = listed.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
        let deleted = env.ok(&["pool", "delete", &env.p("b"), &env.p("a")]).records();
        let names: Vec<_> = deleted.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["b", "a"]);
    }
}

#[test]
fn corrupt_pools_exit_7() {
    let env = Env::new();
    fs::create_dir_all(env.pools()).unwrap();
    fs::write(env.pools().join("junk.plex"), vec![b'j'; 16384]).unwrap();
    let err = env.run(&["pool", "info", "junk"]).fails(7, "Corrupt");
    assert!(err["path"].as_str().unwrap().ends_with("junk.plex"));
    env.run(&["fetch", "junk", "1"]).fails(7, "Corrupt");
    env.run(&["follow", "junk"]).fails(7, "Corrupt");

    // A real pool with a damaged header checksum.
    env.create("hurt", "64K");
    let path = env.pools().join("hurt.plex");
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    env.run(&["feed", "hurt", "1"]).fails(7, "Corrupt");

    // The listing reports the bad pool and still lists the good one.
    env.create("good", "64K");
    let run = env.run(&["pool", "list"]);
    assert_eq!(run.code, 7);
    assert_eq!(run.records().len(), 1);
    assert_eq!(run.errors().len(), 2);

    // Delete refuses files that are not pools, but removes damaged pools.
    env.run(&["pool", "delete", "junk"]).fails(2, "Usage");
    env.ok(&["pool", "delete", "hurt"]);
}

#[test]
fn io_errors_exit_8() {
    let env = Env::new();
    let dir = env.root().join("a-directory");
    fs::create_dir(&dir).unwrap();
    let err = env
        .run(&["fetch", dir.to_str().unwrap(), "1"])
        .fails(8, "Io");
    assert_eq!(err["path"], dir.to_str().unwrap());
}

#[test]
fn permission_denied_exits_6() {
    let env = Env::new();
    env.create("locked", "64K");
    env.feed("locked", "1\n");
    let path = env.pools().join("locked.plex");
    let mode = |m| fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();

    // Read-only for everyone: the unprivileged user reaches and reads the
    // pool (so the failures below are about the file's mode)...
    mode(0o444);
    let read = env.run_unprivileged(&["fetch", "locked", "1"]);
    assert_eq!(read.code, 0, "{read:?}");
    assert_eq!(read.records()[0]["data"], 1);
    // ...but cannot append to it.
    let err = env
        .run_unprivileged(&["feed", "locked", "2"])
        .fails(6, "Permission");
    assert_eq!(err["path"], path.to_str().unwrap());

    // No access at all: reads fail too.
    mode(0o000);
    for args in [["fetch", "locked", "1"], ["pool", "info", "locked"]] {
        let err = env.run_unprivileged(&args).fails(6, "Permission");
        assert_eq!(err["path"], path.to_str().unwrap());
    }
    mode(0o644);
    assert_eq!(
        env.ok(&["pool", "info", "locked"]).records()[0]["messages"],
        1
    );
}

#[test]
fn usage_errors_from_parsing_are_json() {
    let env = Env::new();
    let err = env.run(&[]).fails(2, "Usage");
    assert!(err["hint"].as_str().unwrap().contains("Usage: plex"));
    let err = env.run(&["fetch", &env.p("p")]).fails(2, "Usage");
    assert!(err["message"].as_str().unwrap().contains("<SEQ>"), "{err}");
    env.run(&["fetch", &env.p("p"), "one"]).fails(2, "Usage");
    env.run(&["frobnicate"]).fails(2, "Usage");
    env.run(&["pool", "create", &env.p("p"), "--bogus"])
        .fails(2, "Usage");
    env.run(&["follow", &env.p("p"), "--tail", "1", "--since", "1"])
        .fails(2, "Usage");
    env.run(&["feed", &env.p("p"), "--durability", "eventually"])
        .fails(2, "Usage");
    env.run(&["feed", &env.p("p"), "--errors", "ignore"])
        .fails(2, "Usage");
    for bad in ["5", "1.5s", "1d", "s", "-1s"] {
        let arg = format!("--timeout={bad}");
        let err = env.run(&["follow", &env.p("p"), &arg]).fails(2, "Usage");
        assert!(
            err["message"].as_str().unwrap().contains("--timeout"),
            "{err}"
        );
    }
    // Help and version are not errors.
    let help = env.ok(&["follow", "--help"]);
    assert!(help.stdout.contains("RetentionGap"));
    assert!(help.stderr.is_empty());
    assert!(env.ok(&["--version"]).stdout.starts_with("plex "));
}

#[test]
fn a_failed_sync_is_shown_and_refuses_flush_feeds() {
    let env = Env::new();
    env.create("p", "64K");
    env.feed("p", "{\"a\":1}\n");
    let info = env.ok(&["pool", "info", &env.p("p")]).records();
    assert_eq!(info[0]["sync_failed"], false);

    // What a process whose fdatasync failed leaves in the header: the
    // sticky SYNC_FAILED word (store/FORMAT.md §2, byte 184).
    let path = env.pools().join("p.plex");
    let mut bytes = fs::read(&path).unwrap();
    bytes[184..192].copy_from_slice(&1u64.to_le_bytes());
    fs::write(&path, bytes).unwrap();

    let info = env.ok(&["pool", "info", &env.p("p")]).records();
    assert_eq!(info[0]["sync_failed"], true);
    let err = env
        .run(&["feed", &env.p("p"), "{\"a\":2}", "--durability", "flush"])
        .fails(8, "Io");
    assert!(err["message"].as_str().unwrap().contains("sync"), "{err}");
    // Fast appends do not promise stable storage, so they still work.
    env.ok(&["feed", &env.p("p"), "{\"a\":3}"]);
}

#[test]
fn a_pool_of_another_format_version_names_both_and_says_what_to_do() {
    let env = Env::new();
    env.create("old", "64K");
    let path = env.pools().join("old.plex");
    let mut bytes = fs::read(&path).unwrap();
    // The version word (store/FORMAT.md §2.1, byte 8), as version-1 builds wrote it.
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    fs::write(&path, bytes).unwrap();
    for args in [&["feed", "old", "{}"][..], &["pool", "info", "old"]] {
        let err = env.run(args).fails(2, "Usage");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("version 1") && message.contains("version 2"),
            "{err}"
        );
        assert!(
            err["hint"].as_str().unwrap().contains("plex pool delete"),
            "{err}"
        );
    }
}
