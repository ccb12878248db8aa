//! Endpoint URLs: `tcp://host:port`, `ws://host:port/path`,
//! `tls://host:port[?fingerprint=sha256:HEX]` and
//! `relay://host:port[/?id=DEVICE-ID][&relay=RELAY-ID]`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use plex_proto::relay::{DeviceId, DeviceIdError};

use crate::{Fingerprint, FingerprintError};

/// Where to dial or listen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Request path for WebSocket; `/` by default, empty for TCP and TLS.
    pub path: String,
    /// On `tls://`, the server certificate's pinned SHA-256 fingerprint
    /// (`?fingerprint=sha256:HEX`): when set, the client accepts exactly
    /// that certificate, whoever issued it and whatever names it carries.
    pub fingerprint: Option<Fingerprint>,
    /// On `relay://`, the device (`?id=DEVICE-ID`): the one to dial, or
    /// in a relay listener's local endpoint, the listener's own.
    pub device: Option<DeviceId>,
    /// On `relay://`, the relay's own pinned device id
    /// (`?relay=RELAY-ID`): when set, only that relay is accepted.
    pub relay: Option<DeviceId>,
}

/// The transports the adapters know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Plain TCP.
    Tcp,
    /// WebSocket, binary messages.
    Ws,
    /// TLS over TCP (rustls), ALPN `plex/1`.
    Tls,
    /// Through a Syncthing relay, TLS inside (the `relay` feature).
    Relay,
}

/// Why an endpoint URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No `scheme://` prefix.
    #[error(
        "endpoint {0:?} has no scheme (expected tcp://host:port, tls://host:port or ws://host:port/path)"
    )]
    MissingScheme(String),
    /// A scheme this crate cannot dial.
    #[error("unsupported scheme {0:?} (supported: tcp, tls, ws, relay)")]
    UnsupportedScheme(String),
    /// No host before the port.
    #[error("endpoint {0:?} has no host")]
    MissingHost(String),
    /// No `:port`, or one that is not a number in 0..=65535.
    #[error("endpoint {0:?} needs a numeric port")]
    BadPort(String),
    /// A path on a TCP or TLS endpoint.
    #[error("endpoint {0:?} cannot have a path")]
    UnexpectedPath(String),
    /// A `?query` on a TCP endpoint: only `tls://` takes parameters.
    #[error("endpoint {0:?} cannot have a query (only tls:// takes ?fingerprint=)")]
    UnexpectedQuery(String),
    /// A query parameter the scheme does not take (`tls://` takes
    /// `fingerprint`, `relay://` takes `id` and `relay`).
    #[error("endpoint {url:?}: unknown parameter {name:?} (tls:// takes fingerprint, relay:// id and relay)")]
    UnknownParameter {
        /// The whole URL.
        url: String,
        /// The parameter's name.
        name: String,
    },
    /// A `fingerprint` parameter that is not `sha256:` and 64 hex digits.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// An `id` or `relay` parameter that is not a device id.
    #[error(transparent)]
    DeviceId(#[from] DeviceIdError),
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
            "tls" => Scheme::Tls,
            "relay" => Scheme::Relay,
            other => return Err(EndpointError::UnsupportedScheme(other.into())),
        };
        // A WebSocket path keeps its query (it is the HTTP request target).
        let (rest, query) = match (scheme, rest.split_once('?')) {
            (Scheme::Ws, _) | (_, None) => (rest, None),
            (Scheme::Tcp, Some(_)) => return Err(EndpointError::UnexpectedQuery(url.into())),
            (_, Some((rest, query))) => (rest, Some(query)),
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
            (Scheme::Ws, "") => "/".into(),
            (Scheme::Ws, path) => path.into(),
            (_, "") | (Scheme::Relay, "/") => String::new(),
            (_, _) => return Err(EndpointError::UnexpectedPath(url.into())),
        };
        let (mut fingerprint, mut device, mut relay) = (None, None, None);
        for parameter in query.into_iter().flat_map(|q| q.split('&')) {
            match (scheme, parameter.split_once('=')) {
                (Scheme::Tls, Some(("fingerprint", value))) => fingerprint = Some(value.parse()?),
                (Scheme::Relay, Some(("id", value))) => device = Some(value.parse()?),
                (Scheme::Relay, Some(("relay", value))) => relay = Some(value.parse()?),
                _ => {
                    return Err(EndpointError::UnknownParameter {
                        url: url.into(),
                        name: parameter.split('=').next().unwrap_or_default().into(),
                    })
                }
            }
        }
        Ok(Endpoint {
            scheme,
            host: host.into(),
            port,
            path,
            fingerprint,
            device,
            relay,
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

    /// The host as an IP address ([`host_ip`]); `None` for a name other
    /// than `localhost`.
    pub fn ip(&self) -> Option<IpAddr> {
        host_ip(&self.host)
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

/// `host` as an IP address, without resolving names: an IP literal
/// (IPv6 without brackets), or `localhost` (any case) as 127.0.0.1; `None`
/// for any other name. What a listener that must know whether it is on
/// loopback takes.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse().ok()
}

impl Scheme {
    /// The URL scheme.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Ws => "ws",
            Scheme::Tls => "tls",
            Scheme::Relay => "relay",
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
        )?;
        let mut separator = if self.scheme == Scheme::Relay {
            "/?"
        } else {
            "?"
        };
        let mut parameter = |f: &mut fmt::Formatter<'_>, name: &str, value: &dyn fmt::Display| {
            let written = write!(f, "{separator}{name}={value}");
            separator = "&";
            written
        };
        if let Some(fingerprint) = &self.fingerprint {
            parameter(f, "fingerprint", fingerprint)?;
        }
        if let Some(device) = &self.device {
            parameter(f, "id", device)?;
        }
        if let Some(relay) = &self.relay {
            parameter(f, "relay", relay)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_or_localhost() {
        let ip = |url: &str| url.parse::<Endpoint>().unwrap().ip();
        assert_eq!(ip("tcp://LocalHost:1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("tcp://[::1]:1"), Some("::1".parse().unwrap()));
        assert_eq!(ip("tls://10.0.0.7:1"), Some("10.0.0.7".parse().unwrap()));
        assert_eq!(ip("tcp://example.net:1"), None);
        assert_eq!(ip("tcp://localhost.example.net:1"), None);
    }

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
        assert!(matches!(
            err("tls://host:80/x"),
            EndpointError::UnexpectedPath(_)
        ));
    }

    #[test]
    fn a_fingerprint_query_is_taken_on_tls_only() {
        let hex = "ab".repeat(32);
        let url = format!("tls://localhost:7443?fingerprint=sha256:{hex}");
        let e: Endpoint = url.parse().unwrap();
        assert_eq!((e.scheme, e.port, e.path.as_str()), (Scheme::Tls, 7443, ""));
        assert_eq!(e.fingerprint, Some(Fingerprint([0xab; 32])));
        assert_eq!(e.to_string(), url);
        let plain: Endpoint = "tls://[::1]:1".parse().unwrap();
        assert_eq!((plain.host.as_str(), plain.fingerprint), ("::1", None));

        let err = |s: &str| s.parse::<Endpoint>().unwrap_err();
        assert!(matches!(
            err(&format!("tcp://h:1?fingerprint=sha256:{hex}")),
            EndpointError::UnexpectedQuery(_)
        ));
        assert!(matches!(
            err("tls://h:1?pin=x"),
            EndpointError::UnknownParameter { name, .. } if name == "pin"
        ));
        assert!(matches!(
            err("tls://h:1?fingerprint=sha256:abc"),
            EndpointError::Fingerprint(FingerprintError::Digest(_))
        ));
        assert!(matches!(
            err("tls://h:1?id=x"),
            EndpointError::UnknownParameter { name, .. } if name == "id"
        ));
        // A WebSocket request target keeps its query.
        let ws: Endpoint = "ws://h:1/p?x=1".parse().unwrap();
        assert_eq!(ws.path, "/p?x=1");
    }

    #[test]
    fn relay_urls_name_the_device_and_may_pin_the_relay() {
        let device = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        let relay = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
        let url = format!("relay://127.0.0.1:22067/?id={device}&relay={relay}");
        let e: Endpoint = url.parse().unwrap();
        assert_eq!(
            (e.scheme, e.port, e.path.as_str()),
            (Scheme::Relay, 22067, "")
        );
        assert_eq!(e.device, Some(device.parse().unwrap()));
        assert_eq!(e.relay, Some(relay.parse().unwrap()));
        assert_eq!(e.to_string(), url);
        let bare: Endpoint = "relay://relay.example:22067".parse().unwrap();
        assert_eq!((bare.device, bare.relay), (None, None));
        assert_eq!(bare.to_string(), "relay://relay.example:22067");
        let slash: Endpoint = "relay://h:1/".parse().unwrap();
        assert_eq!(slash, bare_at("h", 1));

        let err = |s: &str| s.parse::<Endpoint>().unwrap_err();
        assert!(matches!(
            err("relay://h:1/?id=NOT-AN-ID"),
            EndpointError::DeviceId(_)
        ));
        assert!(matches!(
            err("relay://h:1/?fingerprint=sha256:00"),
            EndpointError::UnknownParameter { name, .. } if name == "fingerprint"
        ));
        assert!(matches!(
            err("relay://h:1/x"),
            EndpointError::UnexpectedPath(_)
        ));
    }

    fn bare_at(host: &str, port: u16) -> Endpoint {
        Endpoint {
            scheme: Scheme::Relay,
            host: host.into(),
            port,
            path: String::new(),
            fingerprint: None,
            device: None,
            relay: None,
        }
    }
}
