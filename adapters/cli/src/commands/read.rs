//! `plex fetch` and `plex follow`: reading messages back.

use std::time::Duration;

use plex_store::{ErrorKind, Options, Seq, Start};

use crate::cli::{FetchArgs, FollowArgs};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::refs::{PoolDir, PoolRef};

/// Runs `plex fetch`: prints the envelope of one seq.
pub(crate) fn fetch(args: FetchArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    let pool = PoolRef::resolve(&args.pool, dir)?.open(Options::new())?;
    let msg = pool.get(Seq(args.seq))?;
    out.envelope(&msg)?;
    Ok(Outcome::Success)
}

/// Runs `plex follow`: prints envelopes in seq order, sleeping on the
/// pool's futex broadcast between appends.
pub(crate) fn follow(args: FollowArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    let pool = PoolRef::resolve(&args.pool, dir)?.open(Options::new())?;
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
    let mut gap = false;
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
                    return Ok(finished(gap, Outcome::TimedOut));
                }
            }
            // The cursor has moved past the lost seqs: report and go on.
            Err(e) if e.kind() == ErrorKind::RetentionGap => {
                out.flush()?;
                Error::from(e).report();
                gap = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(finished(gap, Outcome::Success))
}

/// A reported gap outranks how the run ended: it means data was lost.
fn finished(gap: bool, ended: Outcome) -> Outcome {
    if gap {
        Outcome::Reported(Kind::RetentionGap)
    } else {
        ended
    }
}
