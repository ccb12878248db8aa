//! `plex bus reply`: answers each request with a run of a command.

use std::ffi::OsString;
use std::future::poll_fn;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::io::AsyncReadExt as _;
use plex_bus::{ClientConfig, Request};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, Semaphore};

use super::{bus_error, connect};
use crate::cli::ReplyArgs;
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};

/// Takes requests to the channel, at most `--concurrency` at a time, and
/// answers each with the stdout of a run of the command. Ends only on an
/// error: the connection ends, or the command cannot be started.
pub(super) async fn run(args: ReplyArgs) -> Result<Outcome> {
    let client = connect(&args.bus).await?;
    let channel = args.channel;
    let mut responder = client
        .respond(&channel)
        .await
        .map_err(|e| bus_error(e, &channel))?;
    let command = Arc::new(args.command);
    let permits = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    // The first failure to start the command, which ends the run: every
    // later request would fail the same way.
    let (fatal_tx, mut fatal) = mpsc::channel::<Error>(1);
    loop {
        let next = async {
            // The semaphore is never closed.
            let permit = permits.clone().acquire_owned().await.ok()?;
            Some((permit, responder.next().await?))
        };
        let (permit, request) = tokio::select! {
            // `fatal_tx` is held here, so `recv` never yields `None`.
            Some(e) = fatal.recv() => return Err(e),
            next = next => next.ok_or_else(|| {
                Error::new(Kind::Unreachable, format!("the broker ended the responder on `{channel}`"))
            })?,
        };
        let (command, fatal_tx) = (command.clone(), fatal_tx.clone());
        tokio::spawn(async move {
            let outcome = answer(request, &command).await;
            drop(permit);
            match outcome {
                Ok(()) => {}
                Err(Failure::Start(e)) => {
                    // Only the first is kept; the others say the same.
                    let _ = fatal_tx.try_send(e);
                }
                Err(Failure::Request(e)) => e.report(),
            }
        });
    }
}

/// Why a request went unanswered.
enum Failure {
    /// The command could not be started.
    Start(Error),
    /// This request failed; the next may not.
    Request(Error),
}

/// Runs the command with the request body on stdin and replies with its
/// stdout. The request is dropped unanswered (the requester sees
/// ResponderGone) if the command fails; the command is killed if the
/// requester gives up.
async fn answer(mut request: Request, command: &[OsString]) -> Result<(), Failure> {
    let name = command[0].to_string_lossy().into_owned();
    let channel = request.channel().to_owned();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::Start(start_error(&name, &e)))?;
    let max = ClientConfig::default().max_payload;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    let ran = tokio::select! {
        ran = run_child(&mut child, stdout, max) => ran,
        () = feed_then_watch(&mut request, stdin) => return Ok(()),
    };
    let dropped = |why: String| {
        Failure::Request(Error::new(
            Kind::ResponderGone,
            format!("`{name}` {why} on a request to `{channel}`: dropped unanswered"),
        ))
    };
    let (status, reply) = match ran {
        Ok(ran) => ran,
        Err(Ran::TooLarge) => {
            return Err(dropped(format!(
                "printed more than the {max}-byte reply limit"
            )))
        }
        Err(Ran::Io(e)) => return Err(dropped(format!("failed ({e})"))),
    };
    if !status.success() {
        return Err(dropped(format!("exited with {status}")));
    }
    request
        .reply(Bytes::from(reply))
        .await
        .map_err(|e| Failure::Request(bus_error(e, &channel)))
}

/// How a run of the command failed.
enum Ran {
    /// It printed more than a reply may hold.
    TooLarge,
    /// Reading its stdout or waiting for it failed.
    Io(io::Error),
}

/// Reads the command's stdout (at most `max` bytes) and waits for it.
async fn run_child(
    child: &mut Child,
    stdout: Option<tokio::process::ChildStdout>,
    max: usize,
) -> Result<(ExitStatus, Vec<u8>), Ran> {
    let mut reply = Vec::new();
    if let Some(stdout) = stdout {
        stdout
            .take(max as u64 + 1)
            .read_to_end(&mut reply)
            .await
            .map_err(Ran::Io)?;
    }
    if reply.len() > max {
        return Err(Ran::TooLarge);
    }
    let status = child.wait().await.map_err(Ran::Io)?;
    Ok((status, reply))
}

/// Copies the request body to the command's stdin and closes it, then
/// waits until the requester gives up; returns only then (or when the
/// body cannot be read: the requester is gone).
async fn feed_then_watch(request: &mut Request, stdin: Option<tokio::process::ChildStdin>) {
    if let Some(mut stdin) = stdin {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match request.reader().read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => return,
            };
            // A command that stops reading (or never reads) its input
            // still gets to answer: stop feeding it.
            if stdin.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        // Closing stdin is the end of the body.
        drop(stdin);
    }
    poll_fn(|cx| request.poll_cancelled(cx)).await;
}

/// The report of a command that cannot be started.
fn start_error(name: &str, e: &io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => Kind::NotFound,
        io::ErrorKind::PermissionDenied => Kind::Permission,
        _ => Kind::Io,
    };
    Error::new(kind, format!("cannot run `{name}`: {e}"))
        .with_hint("the command after `--` must be a program on PATH or a path")
}
