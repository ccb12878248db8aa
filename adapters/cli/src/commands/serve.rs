//! `plex serve`: the pool directory over HTTP and plex/1 (`plex-serve`),
//! until SIGINT or SIGTERM.

use std::io::IsTerminal;

use plex_serve::{Config, ServeError, Server, ServerTls};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ServeArgs;
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::refs::PoolDir;

/// Binds, prints the URL, serves until a signal, and shuts down gracefully.
pub(crate) fn run(args: ServeArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    let url = plex_serve::parse_http_url(&args.http).map_err(|e| report(&e))?;
    let plex_tls = args.listen.iter().any(|l| {
        l.get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("tls://"))
    });
    let tls = certificate(&args, url.tls || plex_tls)?;
    let dir = dir.path()?;
    init_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Kind::Io, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // Before the URL is printed: whoever reads it may signal at once.
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| Error::new(Kind::Io, format!("cannot handle SIGTERM: {e}")))?;
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| Error::new(Kind::Io, format!("cannot handle SIGINT: {e}")))?;
        let mut config = Config::new(dir)
            .addr(url.addr)
            .listen(args.listen)
            .require_token(args.require_token);
        if let Some(tls) = tls {
            if plex_tls {
                config = config.listen_tls(tls.clone());
            }
            if url.tls {
                config = config.tls(tls);
            }
        }
        let server = Server::bind(config).await.map_err(|e| report(&e))?;
        out.bytes(format!("{}\n", server.url()).as_bytes())?;
        for url in server.plex_urls() {
            out.bytes(format!("{url}\n").as_bytes())?;
        }
        out.flush()?;
        let stop = async {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        server.run(stop).await.map_err(|e| report(&e))?;
        Ok(Outcome::Success)
    })
}

/// The certificate of the https:// and tls:// listeners, as the flags
/// give it; none when no listener is either (`wanted`).
fn certificate(args: &ServeArgs, wanted: bool) -> Result<Option<ServerTls>> {
    let given = args.tls_self_signed || args.tls_cert.is_some();
    if !wanted {
        if given {
            return Err(
                Error::usage("TLS flags are for an https:// or tls:// listener").with_hint(
                    format!(
                        "like --http https://{} or --listen tls://127.0.0.1:7443",
                        strip_scheme(&args.http)
                    ),
                ),
            );
        }
        return Ok(None);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ServerTls::from_pem_files(cert, key)
            .map_err(|e| Error::usage(format!("cannot use the TLS certificate: {e}")))?,
        _ if args.tls_self_signed => {
            let tls = ServerTls::self_signed(&["localhost", "127.0.0.1", "::1"])
                .map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
            eprintln!(
                "plex serve: self-signed certificate, fingerprint {}",
                tls.fingerprint()
            );
            tls
        }
        _ => {
            return Err(
                Error::usage("https:// and tls:// listeners need a certificate")
                    .with_hint("give --tls-cert and --tls-key, or --tls-self-signed"),
            )
        }
    };
    Ok(Some(tls))
}

fn strip_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Installs the log subscriber: stderr, filtered by `RUST_LOG` (default
/// `warn`, so that stderr stays quiet unless something goes wrong).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only if a subscriber is already installed, which is then used.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The report of a server that could not start or stop cleanly.
fn report(e: &ServeError) -> Error {
    match e {
        ServeError::Url { .. } => Error::usage(e.to_string())
            .with_hint("like --http http://127.0.0.1:9700 or --listen tcp://127.0.0.1:7070"),
        ServeError::OffLoopback { .. } => Error::usage(e.to_string())
            .with_hint("add --tls-cert and --tls-key (or --tls-self-signed) to an https:// URL"),
        ServeError::PlexOffLoopback { .. } => Error::usage(e.to_string()).with_hint(
            "use --listen tls://HOST:PORT with --tls-cert and --tls-key (or --tls-self-signed)",
        ),
        ServeError::PlexNoCertificate { .. } => Error::usage(e.to_string())
            .with_hint("give --tls-cert and --tls-key, or --tls-self-signed"),
        ServeError::Bind { source, .. } => {
            let kind = match source.kind() {
                std::io::ErrorKind::PermissionDenied => Kind::Permission,
                _ => Kind::Io,
            };
            Error::new(kind, e.to_string())
                .with_hint("another process may be listening there; port 0 picks a free one")
        }
        ServeError::Dir { path, source } => {
            Error::io("cannot use the pool directory", path, source)
        }
        ServeError::Sync(store) => Error::new(Kind::from(store.kind()), e.to_string()),
        _ => Error::new(Kind::Internal, e.to_string()),
    }
}
