//! A pool file image from the fuzzer, checked by `plex_store::check_bytes`:
//! it decodes the header, runs recovery without writing, and validates
//! every message, on arbitrary bytes. Garbage must give a typed error
//! (`Corrupt`, or `Usage` for an unknown version), never a panic or a hang,
//! and a report it does give must add up: every published seq is either a
//! valid message or counted as damaged.

use std::io;
use std::path::Path;

use plex_store::{check_bytes, ErrorKind, Options, Pool};

/// Checks one image; panics when the checker breaks its promises.
pub fn run(data: &[u8]) {
    match check_bytes(data) {
        Ok(report) => {
            let (oldest, newest) = (report.oldest.0, report.newest.0);
            assert!(
                oldest >= 1 && oldest <= newest + 1,
                "bad range {oldest}..={newest}"
            );
            let held = newest + 1 - oldest;
            assert_eq!(report.messages + report.damaged, held, "{report:?}");
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Usage),
            "unexpected error kind for a bad image: {e}"
        ),
    }
}

/// Seeds: real pool files (empty, a few messages, and one whose ring has
/// wrapped), written through `plex-store` into `scratch`.
pub fn seeds(scratch: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    for (name, messages) in [("empty", 0u64), ("few", 5), ("wrapped", 400)] {
        let path = scratch.join(format!("{name}.plex"));
        // A stale file from an earlier run would make `create` fail.
        let _ = std::fs::remove_file(&path);
        let pool = Pool::create(&path, 16 * 1024, Options::new().index_slots(16))
            .map_err(io::Error::other)?;
        for seq in 0..messages {
            let data = vec![seq as u8; (seq as usize * 37) % 200];
            pool.append(&["seed"], &data).map_err(io::Error::other)?;
        }
        drop(pool);
        let bytes = std::fs::read(&path)?;
        std::fs::remove_file(&path)?;
        seeds.push((format!("pool-{name}"), bytes));
    }
    Ok(seeds)
}
