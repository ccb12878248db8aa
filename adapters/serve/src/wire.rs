//! The JSON shapes of the protocol, shared with the `plex` CLI so that a
//! message prints the same byte for byte everywhere: message envelopes,
//! RFC 3339 times, and JSON handling on raw bytes (validation without
//! building a value, and compaction that keeps every token as it is).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use plex_store::Message;
use serde::de::IgnoredAny;

/// Why bytes are not one JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What was wrong, with its position when known.
    pub reason: String,
}

/// Appends the envelope of `msg` to `out`, without a newline:
/// `{"seq":N,"time":"…","meta":{"tags":[…]},"data":…}`.
///
/// `data` is the stored bytes when they are one JSON value (compacted onto
/// one line if they span several). Otherwise it is a JSON string and
/// `meta.encoding` says how to get the bytes back: `"text"` when they are
/// UTF-8 (the string is the text), `"base64"` when they are not (standard
/// padded base64).
pub fn envelope_into(msg: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", msg.seq);
    out.extend_from_slice(b",\"time\":\"");
    rfc3339_into(msg.time, out);
    out.extend_from_slice(b"\",\"meta\":{\"tags\":");
    // Serialising strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &msg.tags);
    match validate(&msg.data) {
        Ok(text) => {
            out.extend_from_slice(b"},\"data\":");
            compact_into(text, out);
        }
        Err(_) => match std::str::from_utf8(&msg.data) {
            Ok(text) => {
                out.extend_from_slice(b",\"encoding\":\"text\"},\"data\":");
                // Serialising a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, text);
            }
            Err(_) => {
                out.extend_from_slice(b",\"encoding\":\"base64\"},\"data\":\"");
                base64_into(&msg.data, out);
                out.push(b'"');
            }
        },
    }
    out.push(b'}');
}

/// Formats `time` as RFC 3339 in UTC with nanoseconds,
/// `2025-01-31T12:00:00.000000000Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    rfc3339_into(time, &mut out);
    // Only ASCII digits and separators were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 3339 form of `time`; times before 1970 print as the epoch
/// (pools store unsigned nanoseconds since the epoch).
pub fn rfc3339_into(time: SystemTime, out: &mut Vec<u8>) {
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

/// Checks that `bytes` are exactly one JSON value (RFC 8259) in UTF-8,
/// surrounded by optional whitespace, and returns them as text.
pub fn validate(bytes: &[u8]) -> Result<&str, Invalid> {
    let text = std::str::from_utf8(bytes).map_err(|e| Invalid {
        reason: format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
    })?;
    // serde_json validates strings, escapes and numbers even when ignoring
    // them, so this allocates nothing and accepts exactly valid JSON.
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| {
        let full = e.to_string();
        let what = full
            .rfind(" at line ")
            .map_or(full.as_str(), |at| &full[..at]);
        let reason = if e.line() <= 1 {
            format!("invalid JSON at column {}: {what}", e.column())
        } else {
            format!(
                "invalid JSON at line {} column {}: {what}",
                e.line(),
                e.column()
            )
        };
        Invalid { reason }
    })?;
    Ok(text)
}

/// Appends `json` (already validated) to `out` without the whitespace
/// between tokens, so that it fits on one line.
pub fn compact_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&bytes[run..i]);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Appends the standard, padded base64 encoding of `bytes` (RFC 4648 §4).
pub fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), b'=']);
        }
        _ => {}
    }
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
            format!("{head}}},\"data\":{{\"x\":[1,2]}}}}")
        );
        assert_eq!(
            envelope(b"hi \"there\"\n", &["a\"b"]),
            format!("{head},\"encoding\":\"text\"}},\"data\":\"hi \\\"there\\\"\\n\"}}")
        );
        assert_eq!(
            envelope(b"\xff\x00", &["a\"b"]),
            format!("{head},\"encoding\":\"base64\"}},\"data\":\"/wA=\"}}")
        );
        assert_eq!(
            envelope(b"", &[]),
            "{\"seq\":7,\"time\":\"1970-01-01T00:00:01.000000020Z\",\"meta\":{\"tags\":[],\"encoding\":\"text\"},\"data\":\"\"}"
        );
    }

    fn compact(json: &str) -> String {
        let mut out = Vec::new();
        compact_into(validate(json.as_bytes()).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn validates_exactly_one_value() {
        for good in [
            "1",
            " {\"a\" : [1, 2.5e300, null]}\r",
            "\"\\u00e9\\\"\"",
            "123456789012345678901234567890",
        ] {
            assert!(validate(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in ["", "{", "1 2", "{'a':1}", "[1,]", "\"\u{1}\"", "nul", "{}}"] {
            assert!(validate(bad.as_bytes()).is_err(), "{bad}");
        }
        let err = validate(b"\xff1").unwrap_err();
        assert_eq!(err.reason, "invalid UTF-8 at byte 1");
        let err = validate(b"{\"a\":}").unwrap_err();
        assert_eq!(err.reason, "invalid JSON at column 6: expected value");
        let err = validate(b"[1,\n2,\nx]").unwrap_err();
        assert!(
            err.reason.starts_with("invalid JSON at line 3 column 1"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn compacts_without_touching_tokens() {
        assert_eq!(
            compact(" { \"a b\" : [ 1 ,\n 2.50 ] } "),
            "{\"a b\":[1,2.50]}"
        );
        assert_eq!(compact("\"x \\\" y\\\\\" "), "\"x \\\" y\\\\\"");
        assert_eq!(
            compact("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(compact("{\"k\":1,\"k\":2}"), "{\"k\":1,\"k\":2}");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            let mut out = Vec::new();
            base64_into(plain.as_bytes(), &mut out);
            assert_eq!(out, encoded.as_bytes());
        }
        let mut out = Vec::new();
        base64_into(&[0xff, 0xfe, 0x00], &mut out);
        assert_eq!(out, b"//4A");
    }
}
