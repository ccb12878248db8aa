//! `plex token create|list|revoke`.

use crate::common::Env;

#[test]
fn tokens_are_created_once_listed_without_secrets_and_revoked() {
    let env = Env::new();
    let created = env.ok(&["token", "create", "ci"]).records();
    assert_eq!(created.len(), 1);
    let ci = &created[0];
    let secret = ci["secret"].as_str().unwrap();
    assert!(secret.starts_with("plxt_") && secret.len() == 69, "{ci}");
    assert_eq!((&ci["name"], &ci["revoked"]), (&"ci".into(), &false.into()));
    let id = ci["id"].as_str().unwrap().to_owned();
    env.ok(&["token", "create", "laptop"]);
    // Listed oldest first, without secrets; the file holds none either.
    let listed = env.ok(&["token", "list"]).records();
    let names: Vec<_> = listed.iter().map(|t| t["name"].clone()).collect();
    assert_eq!(names, ["ci", "laptop"]);
    assert!(listed.iter().all(|t| t.get("secret").is_none()));
    let file = std::fs::read_to_string(env.pools().join(".plex-serve/tokens.json")).unwrap();
    assert!(!file.contains(&secret[5..]));
    // Revoked by id or by name; still listed, as revoked.
    let revoked = env.ok(&["token", "revoke", &id]).records();
    assert_eq!(revoked[0]["revoked"], true);
    env.ok(&["token", "revoke", "laptop"]);
    let listed = env.ok(&["token", "list"]).records();
    assert!(listed.iter().all(|t| t["revoked"] == true));
}

#[test]
fn token_errors_have_their_exit_codes() {
    let env = Env::new();
    env.ok(&["token", "create", "ci"]);
    env.run(&["token", "create", "ci"])
        .fails(4, "AlreadyExists");
    env.run(&["token", "revoke", "nobody"]).fails(3, "NotFound");
    env.run(&["token", "create", "two\nlines"])
        .fails(2, "Usage");
    std::fs::write(env.pools().join(".plex-serve/tokens.json"), "not json").unwrap();
    env.run(&["token", "list"]).fails(7, "Corrupt");
}
