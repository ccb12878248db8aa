//! `plex serve` in this process: the `plex_serve` library on a runtime
//! thread of its own, serving a temporary pool directory over HTTP and
//! over `plex/1` on free loopback ports, stopped when dropped.

use std::thread::JoinHandle;

use plex_serve::{Config, Server};
use tokio::sync::oneshot;

use super::Result;

/// A running `plex serve`; dropping it shuts it down.
#[derive(Debug)]
pub(crate) struct PlexServe {
    /// `http://127.0.0.1:PORT`, for Plasmite's `RemoteClient`.
    pub(crate) http: String,
    /// `tcp://127.0.0.1:PORT`, for `RemotePools`.
    pub(crate) plex: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl PlexServe {
    /// Binds both listeners and serves on a new thread.
    pub(crate) fn start() -> Result<PlexServe> {
        let dir = tempfile::tempdir()?;
        let config = Config::new(dir.path())
            .addr("127.0.0.1:0".parse()?)
            .listen(vec!["tcp://127.0.0.1:0".into()]);
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("plex-serve".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let server = match Server::bind(config).await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let urls = (server.url(), server.plex_urls());
                    let _ = bound_tx.send(Ok(urls));
                    let stopped = async {
                        let _ = stopped.await;
                    };
                    if let Err(e) = server.run(stopped).await {
                        eprintln!("serve: plex serve failed: {e}");
                    }
                });
            })?;
        let mut server = PlexServe {
            http: String::new(),
            plex: String::new(),
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        };
        let (http, plex) = bound_rx
            .recv()
            .map_err(|_| "plex serve's thread ended before binding")?
            .map_err(|e| format!("plex serve: {e}"))?;
        server.http = http;
        server.plex = plex
            .into_iter()
            .next()
            .ok_or("plex serve has no plex/1 listener")?;
        Ok(server)
    }
}

impl Drop for PlexServe {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
