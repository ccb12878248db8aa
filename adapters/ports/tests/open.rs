//! Opening a redb store: reopening, refusing a second opener, and a file
//! that is not a store.

use bytes::Bytes;
use plex_peer::StorePort;
use plex_ports::{OpenError, RedbStore};

#[test]
fn a_file_that_is_not_a_store_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("garbage", vec![0x5a; 64 * 1024]),
        ("short", b"not a database".to_vec()),
        ("zeros", vec![0; 8192]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = RedbStore::open(&path).expect_err(name);
        assert!(
            matches!(
                err,
                OpenError::Corrupt { .. } | OpenError::Io { .. } | OpenError::Database { .. }
            ),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn a_damaged_store_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let store = RedbStore::open(&path).unwrap();
    smol::block_on(store.put("k".into(), Bytes::from(vec![7; 10_000]), Bytes::new())).unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[..] {
        *b ^= 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = RedbStore::open(&path).expect_err("damaged");
    assert!(!err.to_string().is_empty());
}

#[test]
fn a_second_opener_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let first = RedbStore::open(&path).unwrap();
    smol::block_on(first.put("k".into(), "v".into(), Bytes::new())).unwrap();
    let err = RedbStore::open(&path).expect_err("second opener");
    assert!(matches!(err, OpenError::InUse { .. }), "{err:?}");
    let clone = first.clone();
    drop(first);
    drop(clone);
    let again = RedbStore::open(&path).unwrap();
    let value = smol::block_on(again.get("k".into(), Bytes::new())).unwrap();
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
}
