//! compact-encoding primitives (neonplex wire §3) and a bounds-checked
//! reader over a [`Bytes`] message.

use bytes::{BufMut, Bytes};

use super::DecodeError;

/// Writes `value` as a compact-encoding `uint`: one byte up to `0xfc`, then
/// `fd` + u16LE, `fe` + u32LE or `ff` + u64LE, always the shortest form.
pub fn put_uint(out: &mut impl BufMut, value: u64) {
    if value <= 0xfc {
        // Fits: checked just above.
        out.put_u8(value as u8);
    } else if let Ok(v) = u16::try_from(value) {
        out.put_u8(0xfd);
        out.put_u16_le(v);
    } else if let Ok(v) = u32::try_from(value) {
        out.put_u8(0xfe);
        out.put_u32_le(v);
    } else {
        out.put_u8(0xff);
        out.put_u64_le(value);
    }
}

/// The number of bytes [`put_uint`] writes for `value`.
pub fn uint_len(value: u64) -> usize {
    match value {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Writes `bytes` as compact-encoding `uint8array`: `uint` length, then the
/// bytes.
pub fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// Decodes a compact-encoding `uint` from the front of `input`, returning
/// the value and the number of bytes it took.
///
/// Like compact-encoding, a longer form than needed (`fd 05 00`) is
/// accepted.
pub fn decode_uint(input: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut r = Reader::new(Bytes::copy_from_slice(&input[..input.len().min(9)]));
    let value = r.uint("uint")?;
    Ok((value, r.pos))
}

/// A cursor over one message. Every read checks the remaining length
/// first, so no read allocates or slices past the input.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes { what, len }),
        }
    }

    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let end = self.pos + N;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { what })?;
        self.pos = end;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>(what)?[0])
    }

    pub(crate) fn u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.fixed(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }

    /// A strict boolean: 0 or 1. neonplex only ever writes these two.
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadBool { what, value }),
        }
    }

    pub(crate) fn uint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(match self.u8(what)? {
            0xfd => u64::from(self.u16_le(what)?),
            0xfe => u64::from(self.u32_le(what)?),
            0xff => u64::from_le_bytes(self.fixed(what)?),
            small => u64::from(small),
        })
    }

    /// `len` bytes as a zero-copy slice, checked against what remains.
    pub(crate) fn take(&mut self, what: &'static str, len: u64) -> Result<Bytes, DecodeError> {
        let remaining = self.remaining();
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= remaining)
            .ok_or(DecodeError::LengthOverflow {
                what,
                len,
                remaining,
            })?;
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// compact-encoding `uint8array`: `uint` length + bytes.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.uint(what)?;
        self.take(what, len)
    }

    /// Everything left (compact-encoding `raw`).
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }
}
