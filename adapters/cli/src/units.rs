//! Parsers for sizes (`64M`), durations (`500ms`) and tags, used as clap
//! value parsers: a failure becomes a Usage error naming the argument.

use std::time::Duration;

/// Parses a byte size: digits with an optional binary suffix `K`, `M` or
/// `G` (case-insensitive; 1K = 1024 bytes).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size `{text}`: expected a number of bytes with an optional K, M or G suffix, like 64M")
    };
    let (digits, unit) = split_number(text);
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// Parses a duration: digits followed by `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration `{text}`: expected a number with a unit ms, s, m or h, like 500ms or 2m")
    };
    let (digits, unit) = split_number(text);
    let millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

/// The longest tag a pool stores (its length is a u16, `FORMAT.md` §4).
const MAX_TAG: usize = u16::MAX as usize;

/// Accepts a tag of at most 65535 bytes.
pub(crate) fn parse_tag(text: &str) -> Result<String, String> {
    if text.len() > MAX_TAG {
        return Err(format!(
            "tag of {} bytes is longer than the {MAX_TAG} bytes a pool stores",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

/// Splits `text` into its leading ASCII digits and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12K"), Ok(12 * 1024));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in [
            "",
            "M",
            "12X",
            "1.5M",
            "-1",
            " 1M",
            "1MB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "1", "s", "1S", "1.5s", "1 s", "1d", "-1s", "1sec"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("a"), Ok("a".to_owned()));
        assert!(parse_tag(&"x".repeat(MAX_TAG)).is_ok());
        assert!(parse_tag(&"x".repeat(MAX_TAG + 1)).is_err());
    }
}
