//! The session's output: messages framed for the transport, in order, with
//! corked runs sent as BATCH.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protomux::{frame_header, Message, FRAME_HEADER_LEN};
use crate::rpc::{put_uint, uint_len};
use crate::Transmit;

/// Headers are written into one buffer and split off, so a message costs
/// no allocation of its own.
const SCRATCH: usize = 4096;

/// The framing a BATCH adds to an item beyond its bytes, at most: its
/// length, and a channel switch (`00` and a channel id).
const BATCH_ITEM_OVERHEAD: usize = 9 + 1 + 9;

#[derive(Debug, Default)]
pub(super) struct Output {
    queue: VecDeque<Transmit>,
    /// Bytes in `queue`.
    queued: usize,
    corks: usize,
    batch: Vec<Message>,
    /// Bytes in `batch`, as a BATCH would hold them.
    batched: usize,
    scratch: BytesMut,
    /// A send was refused for a full queue: say when it drains.
    pub(super) blocked: bool,
}

impl Output {
    /// Bytes ready to be written: what counts against the send buffer.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Bytes held in a batch being corked.
    pub(super) fn batched(&self) -> usize {
        self.batched
    }

    /// Queues one message, or adds it to the batch being corked; a batch
    /// that would pass `max_message` is sent as it is first (as Protomux
    /// sends at 8 MiB), so a cork never holds more than one message's worth.
    pub(super) fn push(&mut self, message: Message, max_message: usize) {
        if self.corks > 0 {
            let len = message.encoded_len() + BATCH_ITEM_OVERHEAD;
            if !self.batch.is_empty() && 3 + self.batched + len > max_message {
                self.flush_batch(max_message);
            }
            self.batched += len;
            self.batch.push(message);
            return;
        }
        let transmit = self.frame(&message);
        self.queued += transmit.len();
        self.queue.push_back(transmit);
    }

    pub(super) fn has_transmit(&self) -> bool {
        !self.queue.is_empty()
    }

    pub(super) fn pop(&mut self) -> Option<Transmit> {
        let transmit = self.queue.pop_front()?;
        self.queued -= transmit.len();
        Some(transmit)
    }

    pub(super) fn cork(&mut self) {
        self.corks += 1;
    }

    /// Ends one cork; the outermost sends the batch.
    pub(super) fn uncork(&mut self, max_message: usize) {
        if self.corks == 0 {
            return;
        }
        self.corks -= 1;
        if self.corks == 0 {
            self.flush_batch(max_message);
        }
    }

    /// Queues the batch so far as one BATCH, even of one message, as
    /// Protomux does.
    fn flush_batch(&mut self, max_message: usize) {
        let items = std::mem::take(&mut self.batch);
        self.batched = 0;
        if !items.is_empty() {
            let corks = std::mem::take(&mut self.corks);
            self.push(Message::Batch(items), max_message);
            self.corks = corks;
        }
    }

    /// Drops a batch in progress: the connection ended.
    pub(super) fn cancel_cork(&mut self) {
        self.corks = 0;
        self.batch.clear();
        self.batched = 0;
    }

    /// The message with its length prefix: the payload of a DATA message
    /// is passed along as it is, everything else is written out.
    fn frame(&mut self, message: &Message) -> Transmit {
        let len = message.encoded_len();
        if self.scratch.capacity() < len + FRAME_HEADER_LEN {
            self.scratch = BytesMut::with_capacity(SCRATCH.max(len + FRAME_HEADER_LEN));
        }
        let prefix = frame_header(u32::try_from(len).expect("messages fit the u32 prefix"));
        self.scratch.put_slice(&prefix);
        match message {
            Message::Data {
                channel,
                kind,
                payload,
            } => {
                put_uint(&mut self.scratch, *channel);
                put_uint(&mut self.scratch, *kind);
                debug_assert_eq!(uint_len(*channel) + uint_len(*kind) + payload.len(), len);
                Transmit {
                    head: self.scratch.split().freeze(),
                    payload: payload.clone(),
                }
            }
            other => {
                other.encode(&mut self.scratch);
                Transmit {
                    head: self.scratch.split().freeze(),
                    payload: Bytes::new(),
                }
            }
        }
    }
}
