//! The field encodings of [`super::wire`]: little-endian integers,
//! strings as a u16 (or u32) length and UTF-8, optional values behind a
//! presence byte. Every `take_` is bounded by its input and fails with a
//! [`WireError`].

use bytes::{Buf, BufMut};

use super::wire::{check_name, WireError, MAX_TAGS};

/// A short string: a name, a path, a tag. Callers keep it within
/// `u16::MAX` bytes (names and tags are checked, [`check_tags`](super::check_tags));
/// a longer one is cut at a character boundary, never into invalid UTF-8.
pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut len = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.put_u16_le(len as u16);
    out.extend_from_slice(&s.as_bytes()[..len]);
}

pub(super) fn put_long_str(out: &mut Vec<u8>, s: &str) {
    out.put_u32_le(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_long_str(out, s);
        }
    }
}

pub(super) fn put_opt(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        None => out.put_u8(0),
        Some(n) => {
            out.put_u8(1);
            out.put_u64_le(n);
        }
    }
}

/// The encoded length of a tag list.
pub(super) fn tags_len(tags: &[String]) -> usize {
    2 + tags.iter().map(|t| 2 + t.len()).sum::<usize>()
}

pub(super) fn put_tags(out: &mut Vec<u8>, tags: &[String]) {
    out.put_u16_le(u16::try_from(tags.len()).unwrap_or(u16::MAX));
    for tag in tags {
        put_str(out, tag);
    }
}

pub(super) fn take<'a>(
    input: &mut &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], WireError> {
    if input.len() < n {
        return Err(WireError::Truncated(what));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

pub(super) fn take_u8(input: &mut &[u8], what: &'static str) -> Result<u8, WireError> {
    Ok(take(input, 1, what)?[0])
}

pub(super) fn take_bool(input: &mut &[u8], what: &'static str) -> Result<bool, WireError> {
    match take_u8(input, what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(WireError::BadValue(what)),
    }
}

pub(super) fn take_u32(input: &mut &[u8], what: &'static str) -> Result<u32, WireError> {
    Ok(take(input, 4, what)?.get_u32_le())
}

pub(super) fn take_u64(input: &mut &[u8], what: &'static str) -> Result<u64, WireError> {
    Ok(take(input, 8, what)?.get_u64_le())
}

pub(super) fn take_opt(input: &mut &[u8], what: &'static str) -> Result<Option<u64>, WireError> {
    match take_bool(input, what)? {
        false => Ok(None),
        true => take_u64(input, what).map(Some),
    }
}

pub(super) fn take_str(input: &mut &[u8], what: &'static str) -> Result<String, WireError> {
    let len = take(input, 2, what)?.get_u16_le();
    let bytes = take(input, usize::from(len), what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::NotUtf8(what))
}

pub(super) fn take_long_str(input: &mut &[u8], what: &'static str) -> Result<String, WireError> {
    let len = take_u32(input, what)? as usize;
    let bytes = take(input, len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::NotUtf8(what))
}

pub(super) fn take_opt_str(
    input: &mut &[u8],
    what: &'static str,
) -> Result<Option<String>, WireError> {
    match take_bool(input, what)? {
        false => Ok(None),
        true => take_long_str(input, what).map(Some),
    }
}

pub(super) fn take_name(input: &mut &[u8]) -> Result<String, WireError> {
    let name = take_str(input, "pool name")?;
    check_name(&name)?;
    Ok(name)
}

pub(super) fn take_tags(input: &mut &[u8]) -> Result<Vec<String>, WireError> {
    let count = usize::from(take(input, 2, "tag count")?.get_u16_le());
    if count > MAX_TAGS {
        return Err(WireError::TooManyTags);
    }
    (0..count).map(|_| take_str(input, "tag")).collect()
}

pub(super) fn finish(input: &[u8]) -> Result<(), WireError> {
    match input.len() {
        0 => Ok(()),
        n => Err(WireError::Trailing(n)),
    }
}
