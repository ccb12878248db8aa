//! Remote pools (issue 11 §2): the bytes of pool operations on `plex/1`
//! streams. `plex-serve` serves them, its `RemotePools` client speaks them.
//!
//! Every operation is a stream of its own, opened for [`POOLS_PROTOCOL`]
//! with a [`Request`] as its handshake; the server answers with
//! [`Record`]s on the stream and then ends its side:
//!
//! | request | answer |
//! | --- | --- |
//! | `Create`, `Info`, `Describe` | one [`Record::Pool`] |
//! | `List` | a [`Record::Pool`] per pool (a [`Record::Error`] for one that cannot be opened), then [`Record::Done`] |
//! | `Delete` | one [`Record::Pool`]: the name and path of the file deleted |
//! | `Check` | one [`Record::Pool`]: the name and path of the file a `Delete` would delete |
//! | `Get` | one [`Record::Message`] |
//! | `Tail` | [`Record::Message`]s, [`Record::Gap`]s and damaged messages, then [`Record::Done`] or [`Record::TimedOut`] |
//! | `Append` | a [`Record::Receipt`] per [`Record::Batch`] the client writes |
//!
//! A tail reports a damaged message it skipped as a [`Record::Error`] of
//! kind [`ErrorKind::Corrupt`] with the message's seq, and goes on.
//! Any operation may instead end with one [`Record::Error`] (and no
//! `Done`). A tail the
//! server cuts as it shuts down ends without `Done`: its client resumes
//! from the seq after the last one it got, on a new connection. An append
//! stream is long-lived: the client writes batches without waiting for
//! their receipts (pipelined), the server appends each batch as one
//! store batch and answers in order.
//!
//! ```
//! use plex_proto::pools::{Record, Request, TailQuery, TailStart};
//!
//! let request = Request::Tail {
//!     pool: "demo".into(),
//!     query: TailQuery { start: TailStart::Last(10), ..TailQuery::default() },
//! };
//! assert_eq!(Request::decode(&request.to_bytes()), Ok(request));
//!
//! let mut buf = Vec::new();
//! Record::Gap { first: 3, next: 7 }.encode_into(&mut buf);
//! Record::Done.encode_into(&mut buf);
//! let (gap, used) = Record::decode(&buf, 1024).unwrap().unwrap();
//! assert_eq!(gap, Record::Gap { first: 3, next: 7 });
//! assert_eq!(Record::decode(&buf[used..], 1024), Ok(Some((Record::Done, 5))));
//! assert_eq!(Record::decode(&buf[..3], 1024), Ok(None)); // not all there yet
//! ```

mod codec;
#[cfg(test)]
mod tests;
mod wire;

pub use wire::{
    check_name, check_tags, Durability, ErrorKind, ErrorRecord, Message, PoolInfo, Record, Request,
    TailQuery, TailStart, WireError, MAX_NAME, MAX_TAGS, MAX_TAG_LEN, POOLS_PROTOCOL,
    RECORD_HEADER,
};
