//! Endpoint URLs: `tcp://host:port` and `ws://host:port/path`.

use std::fmt;
use std::str::FromStr;

/// Where to dial or listen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Request path for WebSocket; `/` by default, empty for TCP.
    pub path: String,
}

/// The transports the adapters know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Plain TCP.
    Tcp,
    /// WebSocket, binary messages.
    Ws,
}

/// Why an endpoint URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `scheme://` prefix.
    #[error("endpoint {0:?} has no scheme (expected tcp://host:port or ws://host:port/path)")]
    MissingScheme(String),
    /// A scheme this crate cannot dial.
    #[error("unsupported scheme {0:?} (supported: tcp, ws)")]
    UnsupportedScheme(String),
    /// No host before the port.
    #[error("endpoint {0:?} has no host")]
    MissingHost(String),
    /// No `:port`, or one that is not a number in 0..=65535.
    #[error("endpoint {0:?} needs a numeric port")]
    BadPort(String),
    /// A path on a TCP endpoint.
    #[error("tcp endpoint {0:?} cannot have a path")]
    UnexpectedPath(String),
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(url: &str) -> Result<Endpoint, EndpointError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| EndpointError::MissingScheme(url.into()))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "ws" => Scheme::Ws,
            other => return Err(EndpointError::UnsupportedScheme(other.into())),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, port) = v6
                .split_once("]:")
                .ok_or_else(|| EndpointError::BadPort(url.into()))?;
            (host, port)
        } else {
            authority
                .rsplit_once(':')
                .ok_or_else(|| EndpointError::BadPort(url.into()))?
        };
        if host.is_empty() {
            return Err(EndpointError::MissingHost(url.into()));
        }
        let port = port
            .parse()
            .map_err(|_| EndpointError::BadPort(url.into()))?;
        let path = match (scheme, path) {
            (Scheme::Tcp, "") => String::new(),
            (Scheme::Tcp, _) => return Err(EndpointError::UnexpectedPath(url.into())),
            (Scheme::Ws, "") => "/".into(),
            (Scheme::Ws, path) => path.into(),
        };
        Ok(Endpoint {
            scheme,
            host: host.into(),
            port,
            path,
        })
    }
}

impl Endpoint {
    /// This endpoint if it uses `scheme`: for transports that support
    /// only some schemes.
    pub fn require(&self, scheme: Scheme) -> Result<&Endpoint, EndpointError> {
        if self.scheme == scheme {
            Ok(self)
        } else {
            Err(EndpointError::UnsupportedScheme(self.scheme.name().into()))
        }
    }

    /// The same endpoint at the address a listener actually bound.
    pub fn bound_at(&self, addr: std::net::SocketAddr) -> Endpoint {
        Endpoint {
            host: addr.ip().to_string(),
            port: addr.port(),
            ..self.clone()
        }
    }

    /// `host:port`, with brackets around an IPv6 host: what socket APIs take.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl Scheme {
    /// The URL scheme.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Ws => "ws",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.name(),
            self.authority(),
            self.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_ws_and_ipv6() {
        let e: Endpoint = "tcp://127.0.0.1:7000".parse().unwrap();
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.path.as_str()),
            (Scheme::Tcp, "127.0.0.1", 7000, "")
        );
        let e: Endpoint = "ws://localhost:80/plex".parse().unwrap();
        assert_eq!((e.scheme, e.path.as_str()), (Scheme::Ws, "/plex"));
        let e: Endpoint = "WS://[::1]:9".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("::1", 9, "/"));
        assert_eq!(e.to_string(), "ws://[::1]:9/");
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        let err = |s: &str| s.parse::<Endpoint>().unwrap_err();
        assert!(matches!(
            err("127.0.0.1:80"),
            EndpointError::MissingScheme(_)
        ));
        assert!(matches!(err("quic://h:1"), EndpointError::UnsupportedScheme(s) if s == "quic"));
        assert!(matches!(err("tcp://:80"), EndpointError::MissingHost(_)));
        assert!(matches!(err("tcp://host"), EndpointError::BadPort(_)));
        assert!(matches!(err("tcp://host:99999"), EndpointError::BadPort(_)));
        assert!(matches!(
            err("tcp://host:80/x"),
            EndpointError::UnexpectedPath(_)
        ));
    }
}
