//! neonplex's `dev/smoke/tcp.js` over Protomux on TCP (u32 little-endian
//! length before every message): a client opens `neonloom/protocol/v1`
//! with id `9a01`, sends `plex-smoke-tcp` and checks the echo.
//!
//! - `smoke_tcp` runs both ends in one process on an ephemeral port;
//! - `smoke_tcp --listen 127.0.0.1:4700` serves the echo until killed;
//! - `smoke_tcp --connect 127.0.0.1:4700` runs the client once.
//!
//! The client exits 0 on a validated echo, 1 on a failure or after 20 s.

#[path = "shared/smoke.rs"]
mod smoke;

// One thread is plenty for a smoke test.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    smoke::Smoke {
        kind: "tcp",
        id: &[0x9a, 0x01],
        payload: b"plex-smoke-tcp",
    }
    .main()
    .await
}
