//! The loopback listener's guard against DNS rebinding: a browser page
//! from another site that resolves its own name to 127.0.0.1 sends that
//! name as `Host`, and its own origin as `Origin`. Only loopback hosts
//! (`localhost`, 127.0.0.0/8, ::1) are served, and an `Origin`, when sent,
//! must be `http://` with the same host and port.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HOST, ORIGIN};
use hyper::StatusCode;

use crate::config::split_host_port;
use crate::error::{ApiError, Kind};

/// Refuses a request whose `Host` or `Origin` is not this machine's, with
/// Plasmite's 403 Permission.
pub(crate) fn check(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut hosts = headers.get_all(HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return Err(refuse("local request requires a Host header"));
    };
    let host = host
        .to_str()
        .ok()
        .and_then(authority)
        .filter(|a| a.is_loopback());
    let Some(host) = host else {
        return Err(refuse(UNTRUSTED));
    };
    let mut origins = headers.get_all(ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => Ok(()),
        (Some(origin), None) => {
            let origin = origin.to_str().ok().and_then(|o| {
                let (scheme, rest) = o.split_once("://")?;
                let rest = rest.strip_suffix('/').unwrap_or(rest);
                scheme
                    .eq_ignore_ascii_case("http")
                    .then(|| authority(rest))?
            });
            if origin == Some(host) {
                Ok(())
            } else {
                Err(refuse(UNTRUSTED))
            }
        }
        (Some(_), Some(_)) => Err(refuse(UNTRUSTED)),
    }
}

/// Plasmite's message for a refused `Host` or `Origin`.
const UNTRUSTED: &str = "untrusted local request origin";

fn refuse(message: &str) -> ApiError {
    ApiError::new(Kind::Permission, message).with_status(StatusCode::FORBIDDEN)
}

/// A normalised `host[:port]`: the port defaults to 80, as in an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Authority<'a> {
    host: Host<'a>,
    port: u16,
}

#[derive(Debug, Clone, Copy)]
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

impl PartialEq for Host<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Eq for Host<'_> {}

impl Authority<'_> {
    fn is_loopback(&self) -> bool {
        match self.host {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name.eq_ignore_ascii_case("localhost"),
        }
    }
}

/// Parses `host[:port]` (IPv6 in brackets); `None` when malformed or when
/// it carries a path or user.
fn authority(text: &str) -> Option<Authority<'_>> {
    if text.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = split_host_port(text)?;
    let port = match port {
        None => 80,
        Some(p) => p.parse().ok()?,
    };
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        // A name: no brackets or other syntax.
        Err(_) if !text.starts_with('[') => Host::Name(host),
        Err(_) => return None,
    };
    Some(Authority { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn check_with(host: Option<&str>, origin: Option<&str>) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(HOST, HeaderValue::from_str(h).unwrap());
        }
        if let Some(o) = origin {
            headers.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        check(&headers).map_err(|e| {
            assert_eq!(
                (e.kind, e.status),
                (Kind::Permission, StatusCode::FORBIDDEN)
            );
            e.message
        })
    }

    #[test]
    fn loopback_hosts_and_same_origin_only() {
        for host in [
            "127.0.0.1:9700",
            "localhost:9700",
            "LOCALHOST",
            "[::1]:1",
            "127.9.9.9",
        ] {
            assert_eq!(check_with(Some(host), None), Ok(()), "{host}");
        }
        assert_eq!(
            check_with(Some("127.0.0.1:9700"), Some("http://127.0.0.1:9700")),
            Ok(())
        );
        assert_eq!(
            check_with(Some("localhost"), Some("http://localhost:80/")),
            Ok(())
        );
        assert_eq!(check_with(Some("[::1]:9"), Some("http://[::1]:9")), Ok(()));
        for host in [
            "evil.example:9700",
            "10.0.0.1:9700",
            "u@127.0.0.1",
            "127.0.0.1:x",
            "[::1",
        ] {
            assert_eq!(
                check_with(Some(host), None),
                Err(UNTRUSTED.into()),
                "{host}"
            );
        }
        for origin in [
            "http://evil.example:9700",
            "http://127.0.0.1:9701",
            "https://127.0.0.1:9700",
            "http://localhost:9700",
            "null",
            "http://127.0.0.1:9700/page",
        ] {
            assert_eq!(
                check_with(Some("127.0.0.1:9700"), Some(origin)),
                Err(UNTRUSTED.into()),
                "{origin}"
            );
        }
        assert_eq!(
            check_with(None, None),
            Err("local request requires a Host header".into())
        );
    }
}
