//! JSON handling on raw bytes: validation without building a value, and
//! compaction that keeps every token byte for byte (numbers are never
//! rounded, key order and duplicates are kept).

use serde::de::IgnoredAny;

/// Why bytes are not one JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// What was wrong, with its position when known.
    pub(crate) reason: String,
}

/// Checks that `bytes` are exactly one JSON value (RFC 8259) in UTF-8,
/// surrounded by optional whitespace, and returns them as text.
pub(crate) fn validate(bytes: &[u8]) -> Result<&str, Invalid> {
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
pub(crate) fn compact_into(json: &str, out: &mut Vec<u8>) {
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
pub(crate) fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
