//! WebSocket over futures-io streams (async-tungstenite), for the runtimes
//! whose sockets are futures-io ones (smol, async-std): the dial and the
//! server upgrade, shared so each adapter only opens TCP.

use std::sync::Arc;

use crate::{accept_path, ws_io_error, BoxIo, BoxResult, Endpoint, Error, Handshake, Io, WsIo};

/// Dials WebSocket over `io`, an open TCP connection to `endpoint`. With
/// `messages`, one binary message carries each length-prefixed message
/// of the stream (Protomux, [`WsIo::messages`]); otherwise the messages
/// carry a byte stream (`plex/1`, [`WsIo::new`]).
pub async fn connect(endpoint: &Endpoint, io: impl Io, messages: bool) -> Result<BoxIo, Error> {
    let (ws, _) = async_tungstenite::client_async(endpoint.to_string(), io)
        .await
        .map_err(ws_io_error)?;
    Ok(wrap(ws, messages))
}

/// The server upgrade, for a [`HandshakeListener`](crate::HandshakeListener)
/// to run under its timeout: accepts the upgrade on `path` only (another
/// path gets 404), framed as [`connect`] says.
pub fn acceptor<C: Io>(path: String, messages: bool) -> Handshake<C> {
    Arc::new(move |io: C| -> BoxResult<'static, BoxIo> {
        let check = accept_path(path.clone());
        Box::pin(async move {
            let ws = async_tungstenite::accept_hdr_async(io, check)
                .await
                .map_err(ws_io_error)?;
            Ok(wrap(ws, messages))
        })
    })
}

fn wrap<S>(ws: S, messages: bool) -> BoxIo
where
    WsIo<S>: Io,
{
    Box::new(if messages {
        WsIo::messages(ws)
    } else {
        WsIo::new(ws)
    })
}
