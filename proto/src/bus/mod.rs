//! The bus (seed 003): request/reply and publish/subscribe by channel name,
//! through a broker. The sans-IO parts: the bytes of its stream handshakes
//! and records, the routing of channels to subscriptions, and the bounded
//! outbox of a subscriber that may fall behind. `plex-bus` drives them.
//!
//! Everything travels on `plex/1` streams, so nothing of one request can
//! interleave with another's (the seed's open bug):
//!
//! - a client subscribes, or offers to respond, by opening a stream for
//!   [`SUBSCRIBE_PROTOCOL`] with a [`Subscribe`] handshake; the broker
//!   answers with the subscription's number (u64 little-endian) and, for
//!   a subscriber, writes [`Record`]s on it;
//! - each request is a stream for [`REQUEST_PROTOCOL`] with a
//!   [`RequestHead`]; the request's bytes are its data, the reply is what
//!   comes back. The broker opens a stream for [`DELIVER_PROTOCOL`] to one
//!   responder (a [`Delivery`] handshake) and joins the two;
//! - a client publishes on one stream for [`PUBLISH_PROTOCOL`], record
//!   after record, so its messages keep their order. The broker reads a
//!   connection's publish streams one at a time (the others wait, held
//!   back by flow control), so it assembles at most one message per
//!   connection.
//!
//! ```
//! use plex_proto::bus::{Outbox, Pushed, Record, Role, Router, SlowPolicy};
//!
//! let mut router: Router<u32> = Router::new();
//! let all = router.subscribe(1, Role::Subscriber, "orders.*");
//! let a = router.subscribe(2, Role::Responder, "orders.eu");
//! let b = router.subscribe(3, Role::Responder, "orders.*");
//! assert_eq!(router.subscribers("orders.eu"), [all]);
//! assert_eq!(router.responders("orders.eu"), [a, b]);
//! assert_eq!(router.responders("orders.eu"), [b, a]); // in turn
//!
//! // A subscriber that falls behind: a gap instead of unbounded memory.
//! let mut outbox = Outbox::new(200, SlowPolicy::DropWithGap);
//! assert_eq!(outbox.push("orders.eu", vec![0; 100].into()), Pushed::Queued);
//! assert_eq!(outbox.push("orders.eu", vec![0; 100].into()), Pushed::Dropped);
//! assert!(matches!(outbox.pop(), Some(Record::Message { .. })));
//! assert_eq!(outbox.pop(), Some(Record::Gap { dropped: 1 }));
//! ```

mod router;
#[cfg(test)]
mod tests;
mod wire;

pub use router::{
    Outbox, Pushed, Router, SlowPolicy, Subscription, SubscriptionId, RECORD_OVERHEAD,
};
pub use wire::{
    check_channel, DecodeFailure, Delivery, Record, RecordDecoder, RequestHead, Role, Subscribe,
    WireError, BAD_REQUEST, DELIVER_PROTOCOL, MAX_CHANNEL, NO_RESPONDERS, PUBLISH_PROTOCOL,
    REQUEST_PROTOCOL, RESPONDER_GONE, SLOW_CONSUMER, SUBSCRIBE_PROTOCOL,
};
