//! `plex fetch` and `plex follow`: reading messages back.

use std::time::Duration;

use plex_serve::remote::skipped_record;
use plex_store::{ErrorKind, Seq, Start};

use crate::cli::{FetchArgs, FollowArgs};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::refs::{PoolDir, PoolRef};
use crate::remote::RemoteRef;

/// Runs `plex fetch`: prints the envelope of one seq.
pub(crate) fn fetch(args: FetchArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    if let Some(remote) = RemoteRef::parse(&args.pool) {
        return crate::remote::fetch(remote?, args.seq, &args.access, out);
    }
    let pool = PoolRef::resolve(&args.pool, dir)?.open_read_only()?;
    let msg = pool.get(Seq(args.seq))?;
    out.envelope(&msg)?;
    Ok(Outcome::Success)
}

/// Runs `plex follow`: prints envelopes in seq order, sleeping on the
/// pool's futex broadcast between appends.
pub(crate) fn follow(args: FollowArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    if let Some(remote) = RemoteRef::parse(&args.pool) {
        return crate::remote::follow(remote?, args, out);
    }
    let pool = PoolRef::resolve(&args.pool, dir)?.open_read_only()?;
    let start = match (args.tail, args.since) {
        (Some(n), _) => Start::Last(n),
        (None, Some(seq)) => Start::Seq(Seq(seq)),
        (None, None) if args.no_follow => Start::Oldest,
        (None, None) => Start::End,
    };
    // Without --timeout, wait as long as it takes (the store re-checks on
    // its own bounded poll interval in case a wake-up is missed).
    let patience = args.timeout.unwrap_or(Duration::MAX);
    let mut cursor = pool.cursor(start);
    // The first kind of error reported along the way, if any.
    let mut reported = None;
    loop {
        match cursor.try_next() {
            Ok(Some(msg)) => {
                out.envelope(&msg)?;
                if args.one {
                    break;
                }
            }
            Ok(None) if args.no_follow => break,
            Ok(None) => {
                // Readers downstream see everything so far before we sleep.
                out.flush()?;
                if !pool.wait_for(cursor.next_seq(), patience) && args.timeout.is_some() {
                    out.flush()?;
                    return Ok(finished(reported, Outcome::TimedOut));
                }
            }
            // The cursor has moved past the lost or damaged seqs: report
            // them and go on.
            Err(e) if matches!(e.kind(), ErrorKind::RetentionGap | ErrorKind::Corrupt) => {
                out.flush()?;
                let err = Error::from(skipped_record(&e, cursor.next_seq().get()));
                err.report();
                reported.get_or_insert(err.kind());
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(finished(reported, Outcome::Success))
}

/// A reported loss outranks how the run ended: it means data was missed.
fn finished(reported: Option<Kind>, ended: Outcome) -> Outcome {
    reported.map_or(ended, Outcome::Reported)
}
