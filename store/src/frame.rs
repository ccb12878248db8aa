//! Frame encoding and validation on plain byte slices. See `FORMAT.md` §4.
//!
//! ```text
//! 0  u32 magic "PLXF"      4  u32 crc32c
//! 8  u64 seq               16 u64 time (ns since epoch)
//! 24 u32 tags_len          28 u32 data_len
//! 32 tags: (u16 len, utf-8 bytes)*   then data, then zero padding to 8
//! ```

/// Magic of a frame, little-endian "PLXF".
pub(crate) const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"PLXF");
/// Magic of a wrap marker, little-endian "PLXW": the next frame is at ring offset 0.
pub(crate) const WRAP_MAGIC: u32 = u32::from_le_bytes(*b"PLXW");
/// Bytes of the fixed frame header.
pub(crate) const FRAME_HEADER: u64 = 32;

/// The fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    /// Stored checksum.
    pub(crate) crc: u32,
    /// Seq.
    pub(crate) seq: u64,
    /// Timestamp.
    pub(crate) time_ns: u64,
    /// Bytes of encoded tags.
    pub(crate) tags_len: u32,
    /// Bytes of data.
    pub(crate) data_len: u32,
}

/// Why a frame failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Neither a frame nor a wrap marker.
    Magic,
    /// Lengths exceed the frame limit or the ring.
    Length,
    /// The checksum does not match.
    Checksum,
    /// A valid frame, but not the seq expected here.
    Seq,
    /// The tags are malformed.
    Tags,
}

impl FrameError {
    /// A short description.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            FrameError::Magic => "bad frame magic",
            FrameError::Length => "frame length out of bounds",
            FrameError::Checksum => "frame checksum mismatch",
            FrameError::Seq => "frame seq out of order",
            FrameError::Tags => "malformed frame tags",
        }
    }
}

impl FrameHead {
    /// Frame length without padding.
    pub(crate) fn len(&self) -> u64 {
        FRAME_HEADER + u64::from(self.tags_len) + u64::from(self.data_len)
    }

    /// Frame length with padding: the distance to the next frame.
    pub(crate) fn padded_len(&self) -> u64 {
        pad8(self.len())
    }
}

/// Rounds up to a multiple of 8 (inputs are bounded by `u32` sums).
pub(crate) fn pad8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Encoded length of `tags`, or an error naming the problem.
pub(crate) fn tags_len(tags: &[&str]) -> Result<u64, String> {
    let mut total = 0u64;
    for tag in tags {
        if tag.len() > usize::from(u16::MAX) {
            return Err(format!("tag of {} bytes exceeds 65535", tag.len()));
        }
        total += 2 + tag.len() as u64;
    }
    Ok(total)
}

/// Unpadded frame length for these tags and data, or an error.
pub(crate) fn frame_len(tags: &[&str], data_len: usize) -> Result<u64, String> {
    let tags = tags_len(tags)?;
    if tags > u64::from(u32::MAX) || data_len as u64 > u64::from(u32::MAX) {
        return Err("tags or data longer than 4 GiB".into());
    }
    Ok(FRAME_HEADER + tags + data_len as u64)
}

/// Appends one padded frame to `buf`. The caller checked the sizes with
/// [`frame_len`].
pub(crate) fn encode(buf: &mut Vec<u8>, seq: u64, time_ns: u64, tags: &[&str], data: &[u8]) {
    let start = buf.len();
    let tags_len: usize = tags.iter().map(|t| 2 + t.len()).sum();
    buf.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&time_ns.to_le_bytes());
    buf.extend_from_slice(&(tags_len as u32).to_le_bytes());
    buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
    for tag in tags {
        buf.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        buf.extend_from_slice(tag.as_bytes());
    }
    buf.extend_from_slice(data);
    let crc = checksum(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    let padded = start + pad8((buf.len() - start) as u64) as usize;
    buf.resize(padded, 0);
}

/// Parses the fixed header; `max_frame` bounds the unpadded length.
pub(crate) fn parse_head(b: &[u8; 32], max_frame: u64) -> Result<FrameHead, FrameError> {
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(w)
    };
    if u32_at(0) != FRAME_MAGIC {
        return Err(FrameError::Magic);
    }
    let head = FrameHead {
        crc: u32_at(4),
        seq: u64_at(8),
        time_ns: u64_at(16),
        tags_len: u32_at(24),
        data_len: u32_at(28),
    };
    if head.len() > max_frame {
        return Err(FrameError::Length);
    }
    Ok(head)
}

/// Checks the CRC of a whole frame (`frame.len() >= head.len()`).
pub(crate) fn verify(frame: &[u8], head: &FrameHead) -> Result<(), FrameError> {
    let body = frame.get(..head.len() as usize).ok_or(FrameError::Length)?;
    if checksum(body) != head.crc {
        return Err(FrameError::Checksum);
    }
    Ok(())
}

/// Checks the tag encoding of a verified frame without allocating.
pub(crate) fn check_tags(frame: &[u8], head: &FrameHead) -> Result<(), FrameError> {
    let tags_end = FRAME_HEADER as usize + head.tags_len as usize;
    let area = frame
        .get(FRAME_HEADER as usize..tags_end)
        .ok_or(FrameError::Length)?;
    check_tag_area(area)
}

/// Checks an encoded tag area, `(u16 len, utf-8 bytes)*`, without
/// allocating.
pub(crate) fn check_tag_area(area: &[u8]) -> Result<(), FrameError> {
    let mut tags = TagIter { rest: area };
    while let Some(tag) = tags.next_tag() {
        tag?;
    }
    Ok(())
}

/// The tags of an encoded tag area, in order.
#[derive(Debug, Clone)]
pub(crate) struct TagIter<'a> {
    /// The area not yet read.
    pub(crate) rest: &'a [u8],
}

impl<'a> TagIter<'a> {
    /// The next tag, an error if the area is malformed from here, or
    /// `None` at its end.
    pub(crate) fn next_tag(&mut self) -> Option<Result<&'a str, FrameError>> {
        if self.rest.is_empty() {
            return None;
        }
        let tag = self.rest.split_first_chunk::<2>().and_then(|(len, tail)| {
            let len = usize::from(u16::from_le_bytes(*len));
            let (bytes, rest) = (tail.get(..len)?, tail.get(len..)?);
            self.rest = rest;
            Some(bytes)
        });
        Some(match tag.map(std::str::from_utf8) {
            Some(Ok(tag)) => Ok(tag),
            _ => {
                self.rest = &[];
                Err(FrameError::Tags)
            }
        })
    }
}

/// CRC32C over the magic and everything after the checksum field.
fn checksum(frame: &[u8]) -> u32 {
    checksum_parts(&frame[..4], &[&frame[8..]])
}

/// [`checksum`] of a frame held in pieces: its magic, then the bytes after
/// the checksum field in order (the unpadded rest of the frame).
pub(crate) fn checksum_parts(magic: &[u8], rest: &[&[u8]]) -> u32 {
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    crc.update(magic);
    for part in rest {
        crc.update(part);
    }
    // A 32-bit CRC: the digest's value fits in 32 bits.
    crc.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(seq: u64, tags: &[&str], data: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(&mut buf, seq, 99, tags, data);
        buf
    }

    /// Splits a verified frame into tags and data.
    fn decode(frame: &[u8], head: &FrameHead) -> Result<(Vec<String>, Vec<u8>), FrameError> {
        let tags_end = FRAME_HEADER as usize + head.tags_len as usize;
        let mut tags = TagIter {
            rest: &frame[FRAME_HEADER as usize..tags_end],
        };
        let mut out = Vec::new();
        while let Some(tag) = tags.next_tag() {
            out.push(tag?.to_owned());
        }
        Ok((out, frame[tags_end..][..head.data_len as usize].to_vec()))
    }

    fn head_of(buf: &[u8]) -> Result<FrameHead, FrameError> {
        let first: &[u8; 32] = buf[..32].try_into().unwrap();
        parse_head(first, 1 << 20)
    }

    #[test]
    fn round_trip() {
        let buf = one(7, &["a", "", "ünï"], b"hello");
        assert_eq!(buf.len() % 8, 0);
        let head = head_of(&buf).unwrap();
        assert_eq!((head.seq, head.time_ns), (7, 99));
        assert_eq!(head.len(), frame_len(&["a", "", "ünï"], 5).unwrap());
        verify(&buf, &head).unwrap();
        let (tags, data) = decode(&buf, &head).unwrap();
        assert_eq!(tags, ["a", "", "ünï"]);
        assert_eq!(data, b"hello");
    }

    /// The checksum is CRC32C as `FORMAT.md` §4 says, whatever computes
    /// it: this value came from the `crc32c` crate, which wrote every pool
    /// before `crc-fast` took over, so existing pools stay readable.
    #[test]
    fn checksum_is_the_crc32c_of_existing_pools() {
        let buf = one(7, &["a", "", "ünï"], b"hello");
        assert_eq!(head_of(&buf).unwrap().crc, 0x079e_6721);
        let (magic, rest) = (&buf[..4], &buf[8..head_of(&buf).unwrap().len() as usize]);
        let (a, b) = rest.split_at(13);
        assert_eq!(checksum_parts(magic, &[a, &[], b]), 0x079e_6721);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = one(1, &["t"], b"payload!");
        let len = head_of(&buf).unwrap().len() as usize;
        for i in 0..len {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                let ok = head_of(&bad).and_then(|h| verify(&bad, &h).map(|()| h));
                assert!(ok.is_err(), "byte {i} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn lengths_beyond_limit_are_rejected() {
        let mut buf = one(1, &[], &[0; 40]);
        let first: &[u8; 32] = buf[..32].try_into().unwrap();
        assert_eq!(parse_head(first, 71), Err(FrameError::Length));
        buf[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(head_of(&buf), Err(FrameError::Length));
        assert_eq!(head_of(&[0; 32]), Err(FrameError::Magic));
    }

    #[test]
    fn malformed_tags_are_rejected() {
        // A tag length running past the tag area.
        let mut buf = one(1, &["abc"], b"");
        buf[32] = 9;
        let head = head_of(&buf).unwrap();
        assert_eq!(decode(&buf, &head), Err(FrameError::Tags));
        // Invalid UTF-8.
        let mut buf = one(1, &["abc"], b"");
        buf[34] = 0xff;
        let head = head_of(&buf).unwrap();
        assert_eq!(decode(&buf, &head), Err(FrameError::Tags));
    }

    #[test]
    fn oversized_tags_are_refused() {
        let long = "x".repeat(70_000);
        assert!(frame_len(&[&long], 0).is_err());
        assert_eq!(frame_len(&["ab", "c"], 10).unwrap(), 32 + 4 + 3 + 10);
    }
}
