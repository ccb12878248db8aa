//! neonplex's `dev/smoke/ws.js` over Protomux on WebSocket (one binary
//! message per Protomux message): a client opens `neonloom/protocol/v1`
//! with id `9a02`, sends `plex-smoke-ws` and checks the echo.
//!
//! - `smoke_ws` runs both ends in one process on an ephemeral port;
//! - `smoke_ws --listen 127.0.0.1:4701` serves the echo on
//!   `ws://127.0.0.1:4701/` until killed;
//! - `smoke_ws --connect 127.0.0.1:4701` runs the client once.
//!
//! The client exits 0 on a validated echo, 1 on a failure or after 20 s.

#[path = "shared/smoke.rs"]
mod smoke;

// One thread is plenty for a smoke test.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    smoke::Smoke {
        kind: "ws",
        id: &[0x9a, 0x02],
        payload: b"plex-smoke-ws",
    }
    .main()
    .await
}
