//! Incremental frame decoding.
//!
//! Input may be split at any byte boundary; the same frames come out. A frame
//! that lies whole inside one input chunk is returned as a zero-copy slice of
//! it, and so is a payload whose header came in an earlier chunk; only a
//! payload that spans chunks is copied, once, into a buffer of exactly the
//! frame's size (so a copied payload pins no more memory than itself).

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::{
    Frame, FrameHeader, FrameType, SettingsFrame, FLAG_ACK, FLAG_END_STREAM, HEADER_LEN, MAGIC,
    MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE, PREFACE,
    SETTING_INITIAL_WINDOW_SIZE, SETTING_MAX_CONCURRENT_STREAMS, SETTING_MAX_FRAME_SIZE, VERSION,
};
use crate::id::{ErrorCode, StreamId};

/// Turns a byte stream into frames.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use plex_proto::{Decoder, Frame, StreamId};
///
/// let mut wire = BytesMut::new();
/// Frame::Data { stream: StreamId::new(1), end_stream: true, payload: Bytes::from_static(b"hi") }
///     .encode(&mut wire);
/// let mut decoder = Decoder::new(16_384);
/// let mut input = wire.freeze();
/// let frame = decoder.decode(&mut input).unwrap().unwrap();
/// assert!(matches!(frame, Frame::Data { end_stream: true, .. }));
/// ```
#[derive(Debug)]
pub struct Decoder {
    partial: BytesMut,
    max_frame_size: u32,
    awaiting_preface: bool,
}

impl Decoder {
    /// A decoder of bare frames accepting payloads up to `max_frame_size`.
    pub fn new(max_frame_size: u32) -> Decoder {
        Decoder {
            partial: BytesMut::new(),
            max_frame_size,
            awaiting_preface: false,
        }
    }

    /// A decoder that first expects the 8-byte preface.
    pub fn with_preface(max_frame_size: u32) -> Decoder {
        Decoder {
            awaiting_preface: true,
            ..Decoder::new(max_frame_size)
        }
    }

    /// Bytes held from an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Consumes bytes from the front of `input` and returns the next frame, or
    /// `None` once `input` is empty and no frame is complete.
    ///
    /// A header announcing more than `max_frame_size` fails before its payload
    /// is buffered. After an error the decoder must not be used again.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Frame>, ProtocolError> {
        if self.awaiting_preface && !self.take_preface(input)? {
            return Ok(None);
        }
        if self.partial.is_empty() {
            if input.len() >= HEADER_LEN {
                let header = self.header(&input[..HEADER_LEN])?;
                let total = HEADER_LEN + header.len as usize;
                if input.len() >= total {
                    let mut frame = input.split_to(total);
                    frame.advance(HEADER_LEN);
                    return parse_payload(header, frame).map(Some);
                }
                self.partial = BytesMut::with_capacity(total);
            }
            self.partial.extend_from_slice(input);
            input.clear();
            return Ok(None);
        }
        if self.partial.len() < HEADER_LEN {
            let take = (HEADER_LEN - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input.split_to(take));
            if self.partial.len() < HEADER_LEN {
                return Ok(None);
            }
        }
        let header = self.header(&self.partial[..HEADER_LEN])?;
        let len = header.len as usize;
        if self.partial.len() == HEADER_LEN && input.len() >= len {
            // Only the header came separately: the payload is still one
            // slice of the input, so take it without copying.
            self.partial.clear();
            return parse_payload(header, input.split_to(len)).map(Some);
        }
        let total = HEADER_LEN + len;
        if self.partial.capacity() != total {
            let mut exact = BytesMut::with_capacity(total);
            exact.extend_from_slice(&self.partial);
            self.partial = exact;
        }
        let take = (total - self.partial.len()).min(input.len());
        self.partial.extend_from_slice(&input.split_to(take));
        if self.partial.len() < total {
            return Ok(None);
        }
        let mut frame = self.partial.split().freeze();
        frame.advance(HEADER_LEN);
        parse_payload(header, frame).map(Some)
    }

    /// Returns true once the whole preface has been seen.
    fn take_preface(&mut self, input: &mut Bytes) -> Result<bool, ProtocolError> {
        let take = (PREFACE.len() - self.partial.len()).min(input.len());
        for (i, &b) in input[..take].iter().enumerate() {
            let pos = self.partial.len() + i;
            if pos < MAGIC.len() && b != MAGIC[pos] {
                return Err(ProtocolError::NotPlex);
            }
        }
        self.partial.extend_from_slice(&input.split_to(take));
        if self.partial.len() < PREFACE.len() {
            return Ok(false);
        }
        let version = u16::from_be_bytes([self.partial[6], self.partial[7]]);
        if version != VERSION {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        self.partial.clear();
        self.awaiting_preface = false;
        Ok(true)
    }

    fn header(&self, bytes: &[u8]) -> Result<FrameHeader, ProtocolError> {
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(bytes);
        let header = FrameHeader::parse(&raw);
        if header.len > self.max_frame_size {
            return Err(ProtocolError::FrameTooLarge {
                len: header.len,
                max: self.max_frame_size,
            });
        }
        Ok(header)
    }
}

fn parse_payload(h: FrameHeader, mut p: Bytes) -> Result<Frame, ProtocolError> {
    let bad_size = || ProtocolError::BadFrameSize {
        ty: h.ty,
        len: h.len,
    };
    let on_stream = |want_stream: bool| {
        if h.stream.is_connection() == want_stream {
            Err(ProtocolError::BadStreamId {
                ty: h.ty,
                stream: h.stream,
            })
        } else {
            Ok(())
        }
    };
    Ok(match h.ty {
        FrameType::Data => {
            on_stream(true)?;
            Frame::Data {
                stream: h.stream,
                end_stream: h.flags & FLAG_END_STREAM != 0,
                payload: p,
            }
        }
        FrameType::Open => {
            on_stream(true)?;
            if h.flags & FLAG_ACK != 0 {
                Frame::OpenAck {
                    stream: h.stream,
                    handshake: p,
                }
            } else {
                let malformed = ProtocolError::MalformedOpen(h.stream);
                let protocol = take_prefixed(&mut p).ok_or(malformed.clone())?;
                let id = take_prefixed(&mut p).ok_or(malformed)?;
                Frame::Open {
                    stream: h.stream,
                    protocol,
                    id,
                    handshake: p,
                }
            }
        }
        FrameType::RstStream => {
            on_stream(true)?;
            if p.len() != 4 {
                return Err(bad_size());
            }
            Frame::RstStream {
                stream: h.stream,
                code: ErrorCode::new(p.get_u32()),
            }
        }
        FrameType::Settings => {
            on_stream(false)?;
            if h.flags & FLAG_ACK != 0 {
                if !p.is_empty() {
                    return Err(bad_size());
                }
                Frame::SettingsAck
            } else {
                if p.len() % 6 != 0 {
                    return Err(bad_size());
                }
                Frame::Settings(parse_settings(p)?)
            }
        }
        FrameType::Ping => {
            on_stream(false)?;
            let mut payload = [0u8; 8];
            if p.len() != payload.len() {
                return Err(bad_size());
            }
            payload.copy_from_slice(&p);
            Frame::Ping {
                ack: h.flags & FLAG_ACK != 0,
                payload,
            }
        }
        FrameType::GoAway => {
            on_stream(false)?;
            if p.len() < 8 {
                return Err(bad_size());
            }
            Frame::GoAway {
                last_stream: StreamId::new(p.get_u32()),
                code: ErrorCode::new(p.get_u32()),
                debug: p,
            }
        }
        FrameType::WindowUpdate => {
            if p.len() != 4 {
                return Err(bad_size());
            }
            Frame::WindowUpdate {
                stream: h.stream,
                increment: p.get_u32() & MAX_WINDOW,
            }
        }
        FrameType::StopSending => {
            on_stream(true)?;
            if p.len() != 4 {
                return Err(bad_size());
            }
            Frame::StopSending {
                stream: h.stream,
                code: ErrorCode::new(p.get_u32()),
            }
        }
        FrameType::Unknown(ty) => Frame::Unknown {
            ty,
            stream: h.stream,
        },
    })
}

/// Splits a u8-length-prefixed field off the front of `p`.
fn take_prefixed(p: &mut Bytes) -> Option<Bytes> {
    let len = *p.first()? as usize;
    if p.len() < 1 + len {
        return None;
    }
    p.advance(1);
    Some(p.split_to(len))
}

fn parse_settings(mut p: Bytes) -> Result<SettingsFrame, ProtocolError> {
    let mut s = SettingsFrame::default();
    while p.has_remaining() {
        let id = p.get_u16();
        let value = p.get_u32();
        let invalid = ProtocolError::InvalidSetting { id, value };
        match id {
            SETTING_MAX_CONCURRENT_STREAMS => s.max_concurrent_streams = Some(value),
            SETTING_INITIAL_WINDOW_SIZE if (MIN_INITIAL_WINDOW..=MAX_WINDOW).contains(&value) => {
                s.initial_window_size = Some(value)
            }
            SETTING_MAX_FRAME_SIZE
                if (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
            {
                s.max_frame_size = Some(value)
            }
            SETTING_INITIAL_WINDOW_SIZE | SETTING_MAX_FRAME_SIZE => return Err(invalid),
            // Unknown settings are ignored, for extensibility.
            _ => {}
        }
    }
    Ok(s)
}
