//! What to serve, where, and the limits no client can push past.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use plex_runtime::tls::ServerTls;

use crate::error::ServeError;

/// The default listener, as Plasmite's local one: `http://127.0.0.1:9700`.
pub const DEFAULT_HTTP: &str = "http://127.0.0.1:9700";

/// The port of a listener URL that gives none.
const DEFAULT_PORT: u16 = 9700;

/// Limits a client cannot push past; the defaults are Plasmite's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// The largest request body: larger ones get 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The longest tail (`timeout_ms`, and the lifetime of a tail without
    /// one): larger ones get 400. Default 30 s.
    pub max_tail_timeout: Duration,
    /// Tails at once: one more gets 423 Busy. Default 64.
    pub max_tails: usize,
    /// Storage calls running at once on the blocking pool (opens, appends,
    /// reads by seq, listings): one more gets 423 Busy. Default 64.
    pub max_storage_calls: usize,
    /// Open connections: the listener accepts no more until one closes
    /// (they wait in the kernel's backlog). Default 128.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers
    /// (idle keep-alive connections included) before it is closed.
    /// Default 10 s.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive. Default 30 s.
    pub body_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing their
    /// connections. Default 5 s.
    pub shutdown_grace: Duration,
    /// Open `plex/1` sessions: the listeners accept no more until one
    /// closes. Default 128.
    pub max_sessions: usize,
    /// The longest record a `plex/1` client may send (an append batch):
    /// a longer one ends its stream with a Usage error. The server holds a
    /// batch whole to append it, so this bounds what a client makes it
    /// hold; served pools report it as their largest message when it is
    /// smaller than theirs, and the `plex` CLI refuses larger lines as it
    /// refuses lines over a local pool's limit. Default 16 MiB.
    pub max_record_bytes: usize,
    /// How long the web page's event stream stays silent before a
    /// keep-alive comment, so that idle proxies keep it open and a client
    /// that went away is noticed. Default 15 s.
    pub keep_alive: Duration,
    /// How long a `plex/1` session that must authenticate may take to do
    /// so (after its TLS handshake) before it is dropped. Default 10 s.
    pub auth_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_tail_timeout: Duration::from_secs(30),
            max_tails: 64,
            max_storage_calls: 64,
            max_connections: 128,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_sessions: 128,
            max_record_bytes: 16 << 20,
            keep_alive: Duration::from_secs(15),
            auth_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Refuses limits of zero, which would refuse every request.
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        let counts = [
            ("max_body_bytes", self.max_body_bytes),
            ("max_tails", self.max_tails),
            ("max_storage_calls", self.max_storage_calls),
            ("max_connections", self.max_connections),
            ("max_sessions", self.max_sessions),
            ("max_record_bytes", self.max_record_bytes),
        ];
        match counts.iter().find(|(_, n)| *n == 0) {
            Some((name, _)) => Err(ServeError::Limit(name)),
            None => Ok(()),
        }
    }
}

/// A server's settings: the pool directory, the listener and the limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The directory of the pools served: pool `NAME` is `DIR/NAME.plex`,
    /// as for the `plex` CLI. Created if missing.
    pub dir: PathBuf,
    /// Where to listen; a loopback address (port 0 picks a free one).
    pub addr: SocketAddr,
    /// TLS: the listener's certificate. With it, every request needs an
    /// access token ([`crate::tokens`]), wherever the listener is; without
    /// it, the listener must be on loopback.
    pub tls: Option<ServerTls>,
    /// The limits.
    pub limits: Limits,
    /// The `plex/1` listeners; none by default. `plex serve` listens on
    /// [`crate::DEFAULT_PLEX`]. `tcp://` and `ws://` must be on loopback;
    /// `tls://` (which needs [`Config::listen_tls`]) may be anywhere, and
    /// off loopback its sessions must authenticate with an access token
    /// ([`crate::tokens`], [`plex_runtime::auth`]).
    pub listen: Vec<String>,
    /// The certificate of the `tls://` listeners in [`Config::listen`].
    pub listen_tls: Option<ServerTls>,
    /// Whether every `plex/1` session must authenticate with an access
    /// token, on loopback too (off loopback they always must). Default
    /// off: loopback sessions take no credentials.
    pub require_token: bool,
}

impl Config {
    /// Serves `dir` on `127.0.0.1:9700` with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            tls: None,
            limits: Limits::default(),
            listen: Vec::new(),
            listen_tls: None,
            require_token: false,
        }
    }

    /// Sets the listening address.
    pub fn addr(mut self, addr: SocketAddr) -> Config {
        self.addr = addr;
        self
    }

    /// Serves TLS with this certificate, to holders of access tokens.
    pub fn tls(mut self, tls: ServerTls) -> Config {
        self.tls = Some(tls);
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Config {
        self.limits = limits;
        self
    }

    /// Sets the `plex/1` listeners' URLs.
    pub fn listen(mut self, urls: Vec<String>) -> Config {
        self.listen = urls;
        self
    }

    /// Gives the `tls://` listeners this certificate.
    pub fn listen_tls(mut self, tls: ServerTls) -> Config {
        self.listen_tls = Some(tls);
        self
    }

    /// Requires an access token of every `plex/1` session, on loopback too.
    pub fn require_token(mut self, required: bool) -> Config {
        self.require_token = required;
        self
    }
}

/// A parsed listener URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpUrl {
    /// Where to listen.
    pub addr: SocketAddr,
    /// `https://`: TLS, and access tokens.
    pub tls: bool,
}

/// Parses a listener URL, `http[s]://HOST[:PORT][/]`: HOST is an IP address
/// (IPv6 in brackets) or `localhost` (127.0.0.1); PORT defaults to 9700.
/// Whether the address is allowed is [`crate::Server::bind`]'s decision.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, ServeError> {
    let bad = |reason: &str| ServeError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (tls, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
        _ => return Err(bad("expected http://HOST:PORT or https://HOST:PORT")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad(
            "expected http[s]://HOST:PORT, without a path, query or user",
        ));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| bad("malformed HOST:PORT"))?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?,
    };
    let ip = plex_runtime::host_ip(host)
        .ok_or_else(|| bad("the host must be an IP address or localhost"))?;
    Ok(HttpUrl {
        addr: SocketAddr::new(ip, port),
        tls,
    })
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when malformed.
pub(crate) fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
    .filter(|(host, _)| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_urls() {
        let ok = |url: &str| parse_http_url(url).unwrap().addr.to_string();
        assert_eq!(ok(DEFAULT_HTTP), "127.0.0.1:9700");
        assert!(!parse_http_url(DEFAULT_HTTP).unwrap().tls);
        assert!(parse_http_url("https://0.0.0.0:9743").unwrap().tls);
        assert_eq!(ok("http://localhost"), "127.0.0.1:9700");
        assert_eq!(ok("HTTP://[::1]:0/"), "[::1]:0");
        assert_eq!(ok("http://0.0.0.0:80"), "0.0.0.0:80");
        for bad in [
            "127.0.0.1:9700",
            "ftp://127.0.0.1:9743",
            "http://127.0.0.1:9700/pools",
            "http://example.com:1",
            "http://127.0.0.1:99999",
            "http://u@127.0.0.1:1",
            "http://[::1",
            "http://:80",
        ] {
            assert!(
                matches!(parse_http_url(bad), Err(ServeError::Url { .. })),
                "{bad}"
            );
        }
    }
}
