//! STOP_SENDING: one side stops reading a stream and tells the other to
//! stop sending (SPEC.md §3, §5).

use super::recv::Known;
use super::Session;
use crate::error::{LocalError, ProtocolError};
use crate::event::Event;
use crate::frame::{Frame, FrameType};
use crate::id::{ErrorCode, StreamId};
use crate::stream::Fin;

impl Session {
    /// Stops reading: buffered and future data is discarded, and the peer is
    /// sent STOP_SENDING with `code` (unless it already finished). It then
    /// ends its side, and the stream closes once ours ends too; writing and
    /// finishing still work. Stream credit is no longer granted, so a peer
    /// that ignores STOP_SENDING can send at most one window; connection
    /// credit still comes back, so other streams are not starved.
    pub fn stop(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), LocalError> {
        let s = self.live_accepted(stream)?;
        if s.recv.stopped {
            return Ok(());
        }
        let discarded = s.recv.buf.len();
        s.recv.buf.clear();
        s.recv.stopped = true;
        s.recv.done = true;
        let tell = !s.recv.fin;
        self.consume_connection(discarded as u32);
        if tell {
            self.control
                .push_back((Frame::StopSending { stream, code }, false));
        }
        self.maybe_forget(stream);
        Ok(())
    }

    pub(super) fn on_stop_sending(
        &mut self,
        stream: StreamId,
        code: ErrorCode,
    ) -> Result<(), ProtocolError> {
        match self.classify(stream) {
            Known::Idle => Err(ProtocolError::IdleStream {
                ty: FrameType::StopSending,
                stream,
            }),
            Known::Closed => self.ignore(),
            Known::Live => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return Ok(());
                };
                if s.send.stopped.is_none() {
                    s.send.stopped = Some(code);
                    self.apply_stop_sending(stream);
                }
                Ok(())
            }
        }
    }

    /// Acts on the peer's STOP_SENDING once the stream is ours to send on:
    /// unsent data is dropped and END_STREAM queued. On a stream still
    /// awaiting accept this waits for the accept, as no DATA may precede
    /// OPEN ACK.
    pub(super) fn apply_stop_sending(&mut self, stream: StreamId) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let Some(code) = s.send.stopped else {
            return;
        };
        if !s.is_accepted() || s.send.fin == Fin::Sent {
            return;
        }
        let dropped = s.send.buf.len();
        s.send.buf.clear();
        s.send.fin = Fin::Queued;
        s.send.blocked = false;
        self.events.push_back(Event::Stopped { stream, code });
        self.release_send_buffer(stream, dropped);
        self.schedule(stream);
    }
}
