//! Ending the connection: GOAWAY, the drain, and closing.

use bytes::{Bytes, BytesMut};

use super::Session;
use crate::error::{CloseReason, LocalError};
use crate::event::Event;
use crate::frame::Frame;
use crate::id::{ErrorCode, StreamId};
use crate::stream::Fin;

impl Session {
    /// Sends GOAWAY. With NO_ERROR it is a graceful drain: streams already
    /// open finish, new ones are refused, and the session closes with
    /// [`CloseReason::Drained`] once none is left. Any other code closes the
    /// connection now with [`CloseReason::Local`].
    pub fn go_away(&mut self, code: ErrorCode) -> Result<(), LocalError> {
        self.check_open()?;
        if code != ErrorCode::NO_ERROR {
            self.close(CloseReason::Local(code), Some(code));
            return Ok(());
        }
        if !self.goaway_sent {
            self.goaway_sent = true;
            let last_stream = self.goaway_last_stream();
            self.goaway_last = Some(last_stream);
            self.control.push_back((
                Frame::GoAway {
                    last_stream,
                    code,
                    debug: Bytes::new(),
                },
                false,
            ));
            self.check_drained();
        }
        Ok(())
    }

    /// After a GOAWAY, closes once every stream has crossed the wire closed.
    pub(super) fn check_drained(&mut self) {
        let draining = self.goaway_sent || self.goaway_received;
        if draining && self.closed.is_none() && self.local_active == 0 && self.remote_active == 0 {
            self.closed = Some(CloseReason::Drained);
            self.events.push_back(Event::Closed {
                reason: CloseReason::Drained,
            });
        }
    }

    /// Ends the connection. Streams are dropped, except accepted ones whose
    /// END_STREAM arrived and was not read yet: as with TCP, what fully
    /// arrived stays readable (`read` serves it, then end-of-stream, then the
    /// stream is forgotten); nothing more is sent on them. With `goaway` (§10), our
    /// SETTINGS go out first if they have not yet, then the replies the
    /// peer caused before the error (bounded by the reply queue), then a
    /// GOAWAY with that code, last. Without it nothing more is sent.
    pub(super) fn close(&mut self, reason: CloseReason, goaway: Option<ErrorCode>) {
        if self.closed.is_some() {
            return;
        }
        self.streams
            .retain(|_, s| s.recv.fin && !s.recv.done && s.is_accepted());
        for s in self.streams.values_mut() {
            s.counted = false;
            s.send.buf = BytesMut::new();
            s.send.fin = Fin::Sent;
        }
        self.ready.clear();
        self.send_buffered = 0;
        self.send_waiters.clear();
        self.updates.clear();
        self.conn_update_queued = false;
        self.local_active = 0;
        self.remote_active = 0;
        self.pending_accepts.clear();
        self.unclaimed.clear();
        match goaway {
            Some(code) => {
                // Frames of ours (OPEN, PING, resets the application asked
                // for) are moot once the connection ends; replies stay.
                self.control
                    .retain(|(frame, reply)| *reply || matches!(frame, Frame::Settings(_)));
                let debug = match &reason {
                    CloseReason::Violation(e) => Bytes::from(e.to_string()),
                    _ => Bytes::new(),
                };
                let last_stream = self.goaway_last_stream();
                self.control.push_back((
                    Frame::GoAway {
                        last_stream,
                        code,
                        debug,
                    },
                    false,
                ));
            }
            None => {
                self.control.clear();
                self.queued_replies = 0;
            }
        }
        self.closed = Some(reason.clone());
        self.events.push_back(Event::Closed { reason });
    }

    /// The last stream id for a GOAWAY (§9): the highest id the peer opened
    /// whose OPEN we received, never above an earlier GOAWAY's.
    fn goaway_last_stream(&self) -> StreamId {
        let last = StreamId::new(self.last_remote_id);
        self.goaway_last.map_or(last, |earlier| earlier.min(last))
    }
}
