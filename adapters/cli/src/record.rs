//! The JSON records plex prints on stdout, one per line: message envelopes,
//! feed receipts and pool descriptions.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use plex_store::{Info, Message};
use serde::Serialize;

use crate::json;

/// Appends the envelope of `msg` and a newline to `out`:
/// `{"seq":N,"time":"…","meta":{"tags":[…]},"data":…}`.
///
/// `data` is the stored bytes when they are one JSON value (compacted onto
/// one line if they span several). Otherwise it is a JSON string and
/// `meta.encoding` says how to get the bytes back: `"text"` when they are
/// UTF-8 (the string is the text), `"base64"` when they are not (standard
/// padded base64).
pub(crate) fn envelope_into(msg: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", msg.seq);
    out.extend_from_slice(b",\"time\":\"");
    rfc3339_into(msg.time, out);
    out.extend_from_slice(b"\",\"meta\":{\"tags\":");
    string_list_into(&msg.tags, out);
    match json::validate(&msg.data) {
        Ok(text) => {
            out.extend_from_slice(b"},\"data\":");
            json::compact_into(text, out);
        }
        Err(_) => match std::str::from_utf8(&msg.data) {
            Ok(text) => {
                out.extend_from_slice(b",\"encoding\":\"text\"},\"data\":");
                string_into(text, out);
            }
            Err(_) => {
                out.extend_from_slice(b",\"encoding\":\"base64\"},\"data\":\"");
                json::base64_into(&msg.data, out);
                out.push(b'"');
            }
        },
    }
    out.extend_from_slice(b"}\n");
}

/// What `plex feed` prints for each message it appended.
#[derive(Debug, Serialize)]
pub(crate) struct Receipt<'a> {
    /// The message's seq.
    pub(crate) seq: u64,
    /// Its stored append time.
    pub(crate) time: &'a str,
    /// Its tags.
    pub(crate) tags: &'a [String],
}

/// What `plex pool info` and `plex pool list` print for a pool.
#[derive(Debug, Serialize)]
pub(crate) struct PoolRecord {
    /// The pool's name, when it was named rather than given by path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// The pool file.
    pub(crate) path: String,
    /// File length in bytes.
    pub(crate) size: u64,
    /// Ring length in bytes: what messages share.
    pub(crate) ring_size: u64,
    /// Number of index slots.
    pub(crate) index_capacity: u64,
    /// The largest message the pool accepts, frame header and tags included.
    pub(crate) max_message: u64,
    /// Messages held.
    pub(crate) messages: u64,
    /// The oldest seq held (`newest + 1` when empty).
    pub(crate) oldest: u64,
    /// The newest seq (0 before the first append).
    pub(crate) newest: u64,
    /// Every seq up to this one is on stable storage.
    pub(crate) synced: u64,
    /// Followers waiting for wake-ups, across processes.
    pub(crate) waiters: u32,
    /// A sync of this pool failed once: `synced` no longer rises, and
    /// appends with `--durability flush` fail with Io.
    pub(crate) sync_failed: bool,
    /// Messages held whose stored frames fail validation (reads of them
    /// fail with Corrupt); only `plex pool info` validates them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) damaged: Option<u64>,
}

impl PoolRecord {
    /// Describes a pool from its info snapshot.
    pub(crate) fn new(name: Option<&str>, info: &Info) -> PoolRecord {
        PoolRecord {
            name: name.map(str::to_owned),
            path: display(&info.path),
            size: info.file_len,
            ring_size: info.ring_len,
            index_capacity: info.index_slots,
            max_message: info.max_frame,
            messages: info.len(),
            oldest: info.oldest.get(),
            newest: info.newest.get(),
            synced: info.synced.get(),
            waiters: info.waiters,
            sync_failed: info.sync_failed,
            damaged: None,
        }
    }
}

/// A path as JSON text (lossy for non-UTF-8 names).
pub(crate) fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Formats `time` as RFC 3339 in UTC with nanoseconds,
/// `2025-01-31T12:00:00.000000000Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    rfc3339_into(time, &mut out);
    // Only ASCII digits and separators were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 3339 form of `time`; times before 1970 print as the epoch
/// (pools store unsigned nanoseconds since the epoch).
fn rfc3339_into(time: SystemTime, out: &mut Vec<u8>) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let rem = secs % 86_400;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_nanos()
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `s` as a JSON string.
fn string_into(s: &str, out: &mut Vec<u8>) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `items` as a JSON array of strings.
fn string_list_into(items: &[String], out: &mut Vec<u8>) {
    // Serialising strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, items);
}

#[cfg(test)]
mod tests {
    use super::*;
    use plex_store::Seq;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> String {
        rfc3339(UNIX_EPOCH + Duration::new(secs, nanos))
    }

    #[test]
    fn rfc3339_utc_with_nanoseconds() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            at(1_709_251_199, 999_999_999),
            "2024-02-29T23:59:59.999999999Z"
        );
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000000Z");
        assert_eq!(
            at(u64::MAX / 1_000_000_000, 0),
            "2554-07-21T23:34:33.000000000Z"
        );
    }

    fn envelope(data: &[u8], tags: &[&str]) -> String {
        let msg = Message {
            seq: Seq(7),
            time: UNIX_EPOCH + Duration::new(1, 20),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            data: data.to_vec(),
        };
        let mut out = Vec::new();
        envelope_into(&msg, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn envelopes_keep_json_and_encode_the_rest() {
        let head = r#"{"seq":7,"time":"1970-01-01T00:00:01.000000020Z","meta":{"tags":["a\"b"]"#;
        assert_eq!(
            envelope(b"{\"x\": [1,\n 2]}", &["a\"b"]),
            format!("{head}}},\"data\":{{\"x\":[1,2]}}}}\n")
        );
        assert_eq!(
            envelope(b"hi \"there\"\n", &["a\"b"]),
            format!("{head},\"encoding\":\"text\"}},\"data\":\"hi \\\"there\\\"\\n\"}}\n")
        );
        assert_eq!(
            envelope(b"\xff\x00", &["a\"b"]),
            format!("{head},\"encoding\":\"base64\"}},\"data\":\"/wA=\"}}\n")
        );
        assert_eq!(
            envelope(b"", &[]),
            "{\"seq\":7,\"time\":\"1970-01-01T00:00:01.000000020Z\",\"meta\":{\"tags\":[],\"encoding\":\"text\"},\"data\":\"\"}\n"
        );
    }
}
