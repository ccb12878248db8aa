//! Read-only handles: no lock, no recovery, no writes, and appends refused.

use std::fs::File;
use std::time::{Duration, SystemTime};

use plex_store::{Error, ErrorKind, Options, Pool, Seq, Start};

fn fingerprint(path: &std::path::Path) -> (Vec<u8>, SystemTime) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (std::fs::read(path).unwrap(), modified)
}

#[test]
fn read_only_open_never_writes_even_a_pool_needing_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    for i in 0..5u8 {
        pool.append(&["t"], &[i; 10]).unwrap();
    }
    drop(pool);
    // Unpublish 4 and 5 and mark a writer as dead mid-append: a writable
    // open would repair this; a read-only one must leave it alone.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[152..160].copy_from_slice(&3u64.to_le_bytes());
    bytes[160..168].copy_from_slice(&1u64.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let before = fingerprint(&path);

    let pool = Pool::open_read_only(&path).unwrap();
    assert!(pool.is_read_only() && pool.recovery().is_none());
    let info = pool.info();
    assert_eq!((info.oldest, info.newest), (Seq(1), Seq(3)));
    assert_eq!(pool.get(Seq(3)).unwrap().data, [2; 10]);
    assert_eq!(pool.get(Seq(4)).unwrap_err().kind(), ErrorKind::NotFound);
    let mut cursor = pool.cursor(Start::Oldest);
    while cursor.try_next().unwrap().is_some() {}
    assert_eq!(cursor.next_seq(), Seq(4));
    assert!(pool.damaged().unwrap().is_empty());
    let err = pool.append(&[], b"no").unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(pool.append_batch(&[]).is_err());
    drop(pool);
    assert!(
        fingerprint(&path) == before,
        "a read-only open changed the file"
    );

    // A writable open recovers it.
    let pool = Pool::open(&path).unwrap();
    assert_eq!(pool.recovery().unwrap().discarded, Seq(4)..Seq(6));
}

#[test]
fn read_only_open_does_not_wait_for_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.pool");
    let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    pool.append(&[], b"one").unwrap();
    // Another open file description holds the writer lock (FORMAT.md §5.1)
    // for the rest of the test.
    let holder = File::open(&path).unwrap();
    rustix::fs::flock(
        &holder,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .unwrap();
    let reader = Pool::open_read_only(&path).unwrap();
    assert_eq!(reader.get(Seq(1)).unwrap().data, b"one");
    assert_eq!(reader.info().newest, Seq(1));
    assert!(!reader.wait_for(Seq(2), Duration::ZERO));
}

#[test]
fn read_only_follower_sees_appends_from_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("follow.pool");
    let writer = Pool::create(&path, 1 << 16, Options::new()).unwrap();
    let options = Options::new().poll_interval(Duration::from_millis(5));
    let reader = Pool::open_read_only_with(&path, options).unwrap();
    let mut cursor = reader.cursor(Start::End);
    std::thread::scope(|s| {
        let follower = s.spawn(move || cursor.next_timeout(Duration::from_secs(60)).unwrap());
        writer.append(&[], b"hi").unwrap();
        let msg = follower.join().unwrap().unwrap();
        assert_eq!((msg.seq, msg.data), (Seq(1), b"hi".to_vec()));
    });
}

/// The permissions of this process's mappings of `path`, with their sizes
/// (from `/proc/self/maps`).
fn mappings_of(path: &std::path::Path) -> Vec<(String, u64)> {
    let path = path.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| l.ends_with(path.to_str().unwrap()))
        .map(|l| {
            let mut f = l.split_whitespace();
            let (start, end) = f.next().unwrap().split_once('-').unwrap();
            let size =
                u64::from_str_radix(end, 16).unwrap() - u64::from_str_radix(start, 16).unwrap();
            (f.next().unwrap().to_owned(), size)
        })
        .collect()
}

/// A read-only handle maps the pool read-only, even when the file is
/// writable: only the header page, where followers register, is mapped
/// writable. It used to map the whole file writable.
#[test]
fn read_only_open_maps_the_ring_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maps.pool");
    let writer = Pool::create(&path, 1 << 20, Options::new()).unwrap();
    writer.append(&[], b"one").unwrap();
    drop(writer);
    let reader = Pool::open_read_only(&path).unwrap();
    let mut maps = mappings_of(&path);
    maps.sort();
    assert_eq!(
        maps,
        [("r--s".to_owned(), 1 << 20), ("rw-s".to_owned(), 4096)]
    );
    // The writable header page is what lets its followers register.
    let options = Options::new().poll_interval(Duration::from_secs(60));
    let follower = Pool::open_read_only_with(&path, options).unwrap();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| follower.wait_for(Seq(2), Duration::from_secs(60)));
        while reader.info().waiters == 0 {
            std::thread::yield_now();
        }
        Pool::open(&path).unwrap().append(&[], b"two").unwrap();
        assert!(waiting.join().unwrap());
    });
}

#[test]
fn is_pool_checks_the_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.pool");
    Pool::create(&path, 1 << 16, Options::new()).unwrap();
    assert!(plex_store::is_pool(&path).unwrap());
    assert_eq!(&std::fs::read(&path).unwrap()[..8], &plex_store::MAGIC);
    let other = dir.path().join("other");
    std::fs::write(&other, b"PLEX").unwrap();
    assert!(!plex_store::is_pool(&other).unwrap());
    std::fs::write(&other, b"not a pool at all").unwrap();
    assert!(!plex_store::is_pool(&other).unwrap());
    let missing = plex_store::is_pool(dir.path().join("missing")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}
