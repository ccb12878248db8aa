//! Store errors and pool descriptions as remote pools send them, and as
//! the `plex` CLI prints them for local pools too: one wording, one set of
//! hints, wherever the pool is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plex_proto::pools::{ErrorKind, ErrorRecord, PoolInfo};
use plex_store::{Error as StoreError, ErrorKind as StoreKind, Info, Location};

/// A store error as a remote operation reports it: its kind, its message,
/// the hint the `plex` CLI gives, its path and seq.
pub fn error_record(e: &StoreError) -> ErrorRecord {
    let kind = error_kind(e.kind());
    let mut record = ErrorRecord::new(kind, e.to_string());
    let path = |p: &std::path::Path| Some(p.to_string_lossy().into_owned());
    match e {
        StoreError::NotFound { path: p }
        | StoreError::AlreadyExists { path: p }
        | StoreError::Busy { path: p }
        | StoreError::Permission { path: p, .. }
        | StoreError::Io { path: p, .. }
        | StoreError::ReadOnly { path: p } => record.path = path(p),
        StoreError::UnsupportedVersion { path: p, .. } => {
            record.path = path(p);
            record.hint = Some(
                "another plex build made this pool; read it with that build, or \
                 delete it (`plex pool delete`) and create it anew"
                    .into(),
            );
        }
        StoreError::Corrupt { path: p, at, .. } => {
            // `check_bytes` reports corruption without a file.
            if !p.as_os_str().is_empty() {
                record.path = path(p);
            }
            record.hint = Some(match at {
                Location::Seq(seq) => {
                    record.seq = Some(seq.get());
                    "this message's stored frame is damaged; the others can still be read".into()
                }
                _ => "the file is damaged or is not a plex pool".into(),
            });
        }
        StoreError::SeqNotFound {
            seq,
            oldest,
            newest,
        } => {
            record.seq = Some(seq.get());
            record.hint = Some(if newest.get() == 0 {
                "the pool is empty".into()
            } else if seq.get() == 0 {
                "seqs start at 1".into()
            } else if seq > newest {
                format!("not written yet; the newest seq is {newest}")
            } else {
                format!("overwritten; the oldest seq held is {oldest}")
            });
        }
        StoreError::RetentionGap { lost } => {
            record.seq = Some(lost.start.get());
            record.hint = Some(
                "the reader fell behind the pool's retention; a larger pool (--size) holds more"
                    .into(),
            );
        }
        _ => {}
    }
    match kind {
        ErrorKind::Busy => record.hint = Some("retry".into()),
        ErrorKind::Internal => record.hint = Some("this is a bug in plex; please report it".into()),
        _ => {}
    }
    record
}

/// What a reader reports for the damaged message it skipped: the store's
/// error, its hint naming the seqs skipped when there were several (`next`
/// is the seq the reader goes on at). Local and remote follows report it
/// alike.
pub fn skipped_record(e: &StoreError, next: u64) -> ErrorRecord {
    let mut record = error_record(e);
    if let StoreError::Corrupt {
        at: Location::Seq(first),
        ..
    } = e
    {
        let first = first.get();
        if next > first + 1 {
            record.hint = Some(format!("seqs {first}..{next} cannot be read"));
        }
    }
    record
}

/// The wire kind of a store error kind.
pub fn error_kind(kind: StoreKind) -> ErrorKind {
    match kind {
        StoreKind::Usage => ErrorKind::Usage,
        StoreKind::NotFound => ErrorKind::NotFound,
        StoreKind::AlreadyExists => ErrorKind::AlreadyExists,
        StoreKind::Busy => ErrorKind::Busy,
        StoreKind::Permission => ErrorKind::Permission,
        StoreKind::Corrupt => ErrorKind::Corrupt,
        StoreKind::Io => ErrorKind::Io,
        StoreKind::RetentionGap => ErrorKind::RetentionGap,
        // Internal, and any kind a newer store adds.
        _ => ErrorKind::Internal,
    }
}

/// The description of pool `name` from its info snapshot.
pub fn pool_info(name: &str, info: &Info, damaged: Option<u64>) -> PoolInfo {
    PoolInfo {
        name: name.to_owned(),
        path: info.path.to_string_lossy().into_owned(),
        file_len: info.file_len,
        ring_len: info.ring_len,
        index_slots: info.index_slots,
        max_frame: info.max_frame,
        messages: info.len(),
        oldest: info.oldest.get(),
        newest: info.newest.get(),
        synced: info.synced.get(),
        waiters: info.waiters,
        sync_failed: info.sync_failed,
        damaged,
    }
}

/// A message time as nanoseconds since the Unix epoch.
pub(crate) fn nanos(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds since the Unix epoch as a time.
pub fn time_of(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plex_store::Seq;

    #[test]
    fn store_errors_keep_their_hints_seq_and_path() {
        let missing = StoreError::SeqNotFound {
            seq: Seq(7),
            oldest: Seq(1),
            newest: Seq(3),
        };
        let record = error_record(&missing);
        assert_eq!((record.kind, record.seq), (ErrorKind::NotFound, Some(7)));
        assert_eq!(
            record.hint.as_deref(),
            Some("not written yet; the newest seq is 3")
        );
        let gap = error_record(&StoreError::RetentionGap {
            lost: Seq(2)..Seq(5),
        });
        assert_eq!((gap.kind, gap.seq), (ErrorKind::RetentionGap, Some(2)));
        let gone = error_record(&StoreError::NotFound {
            path: "/pools/a.plex".into(),
        });
        assert_eq!(gone.path.as_deref(), Some("/pools/a.plex"));
        assert_eq!(gone.kind, ErrorKind::NotFound);
    }

    #[test]
    fn times_round_trip_through_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(time_of(nanos(t)), t);
    }
}
