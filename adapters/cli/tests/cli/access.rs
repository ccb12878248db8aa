//! Remote commands against a `plex serve` on tls:// that requires access
//! tokens (as off loopback; here on loopback with --require-token):
//! --token / PLEX_TOKEN, --tls-ca / PLEX_TLS_CA, and the refusals.

use std::path::{Path, PathBuf};

use crate::common::Env;
use crate::serve::Serve;

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert.pem, key.pem).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_token_and_the_servers_ca_reach_pools_and_the_bus_over_tls() {
    let env = Env::new();
    let (cert, key) = certificate(env.root(), "server");
    let created = env.ok(&["token", "create", "ci"]).records();
    let secret = created[0]["secret"].as_str().unwrap().to_owned();
    let serve = Serve::with(
        &env,
        "tls://127.0.0.1:0",
        &[
            "--tls-cert",
            text(&cert),
            "--tls-key",
            text(&key),
            "--require-token",
        ],
    );
    let pool = format!("{}/p", serve.plex);
    let with_token = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", &secret, "--tls-ca", text(&cert)]);
        env.run(&all)
    };

    // Options on the command line, then from the environment.
    let run = with_token(&["pool", "create", &pool, "--size", "64K"]);
    assert_eq!(run.code, 0, "{run:?}");
    let fed = env
        .cmd()
        .args(["feed", &pool, r#"{"a":1}"#])
        .env("PLEX_TOKEN", &secret)
        .env("PLEX_TLS_CA", &cert)
        .output()
        .unwrap();
    assert!(fed.status.success(), "{fed:?}");
    let fetched = with_token(&["fetch", &pool, "1"]).records();
    assert_eq!(fetched[0]["data"]["a"], 1);
    let listed = with_token(&["pool", "list", &serve.plex]).records();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "p");
    // The bus answers an admitted client: nobody responds here.
    with_token(&["bus", "request", "nobody.home", "hi", "--url", &serve.plex])
        .fails(11, "NoResponders");

    // Refusals: Permission (exit 6), with the reason and a hint.
    let missing = env.run(&["fetch", &pool, "1", "--tls-ca", text(&cert)]);
    let err = missing.fails(6, "Permission");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("requires an access token"),
        "{err}"
    );
    assert!(err["hint"].as_str().unwrap().contains("--token"), "{err}");
    let err = env
        .run(&[
            "bus",
            "request",
            "nobody.home",
            "hi",
            "--url",
            &serve.plex,
            "--tls-ca",
            text(&cert),
        ])
        .fails(6, "Permission");
    assert!(
        err["hint"].as_str().unwrap().contains("PLEX_TOKEN"),
        "{err}"
    );
    let wrong = env.run(&[
        "fetch",
        &pool,
        "1",
        "--tls-ca",
        text(&cert),
        "--token",
        "plxt_wrong",
    ]);
    let err = wrong.fails(6, "Permission");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("refused the access token"),
        "{err}"
    );
    env.ok(&["token", "revoke", "ci"]);
    with_token(&["fetch", &pool, "1"]).fails(6, "Permission");

    // A server whose certificate the client does not trust.
    let (other, _) = certificate(env.root(), "other");
    env.run(&[
        "fetch",
        &pool,
        "1",
        "--tls-ca",
        text(&other),
        "--token",
        &secret,
    ])
    .fails(10, "Unreachable");
    // A CA file that is not one.
    env.run(&[
        "fetch",
        &pool,
        "1",
        "--tls-ca",
        text(&env.root().join("nope.pem")),
    ])
    .fails(2, "Usage");
    assert_eq!(serve.stop("-TERM").code, 0);
}

#[test]
fn a_self_signed_server_is_reached_by_the_fingerprint_it_prints() {
    let env = Env::new();
    let created = env.ok(&["token", "create", "dev"]).records();
    let secret = created[0]["secret"].as_str().unwrap().to_owned();
    let mut serve = Serve::with(
        &env,
        "tls://127.0.0.1:0",
        &["--tls-self-signed", "--require-token"],
    );
    let line = serve.stderr_line();
    let fingerprint = line
        .split_once("fingerprint ")
        .map(|(_, f)| f.trim().to_owned())
        .unwrap_or_else(|| panic!("printed {line}"));
    let pool = format!("{}/p?fingerprint={fingerprint}", serve.plex);
    let run = env.run(&["pool", "create", &pool, "--size", "64K", "--token", &secret]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.records()[0]["name"], "p");
    // Without the pin, the system's roots do not know the certificate.
    let unpinned = format!("{}/p", serve.plex);
    env.run(&["pool", "info", &unpinned, "--token", &secret])
        .fails(10, "Unreachable");
    assert_eq!(serve.stop("-TERM").code, 0);
}

#[test]
fn plex_listeners_off_loopback_need_tls() {
    let env = Env::new();
    let err = env
        .run(&[
            "serve",
            "--http",
            "http://127.0.0.1:0",
            "--listen",
            "ws://0.0.0.0:0/plex",
        ])
        .fails(2, "Usage");
    assert!(err["hint"].as_str().unwrap().contains("tls://"), "{err}");
    // tls:// needs a certificate.
    env.run(&[
        "serve",
        "--http",
        "http://127.0.0.1:0",
        "--listen",
        "tls://127.0.0.1:0",
    ])
    .fails(2, "Usage");
}
