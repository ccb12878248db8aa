//! Codec tests: neonplex's golden vectors, every error path, round-trips.

mod calls;
mod errors;
mod model;
mod plex1;
mod props;
mod vectors;

use bytes::Bytes;

pub(crate) fn hex(text: &str) -> Bytes {
    assert!(text.len() % 2 == 0, "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect::<Vec<u8>>()
        .into()
}

pub(crate) fn b(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}
