//! `plex`: the command-line tool for local pools, and a client (and broker)
//! of the plex bus.
//!
//! It parses arguments ([`cli`]), resolves pool names ([`refs`]), runs a
//! command ([`commands`]) that prints JSON records to stdout ([`output`],
//! [`record`]), and maps every failure to a stable kind and exit code
//! ([`error`]). The storage logic is all in `plex-store`, the bus's in
//! `plex-bus`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
mod cli;
mod commands;
mod error;
mod json;
mod lines;
mod output;
mod record;
mod refs;
mod remote;
mod units;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::Error;
use crate::output::Out;
use crate::refs::PoolDir;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failed(&e),
    };
    let mut out = Out::new();
    let dir = PoolDir::new(cli.dir);
    let result = commands::run(cli.command, &dir, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // Records printed before the failure (receipts of the lines
            // before a bad one) come first; a failure here changes nothing.
            let _ = out.flush();
            e.report();
            ExitCode::from(e.kind().exit_code())
        }
    }
}

/// Handles a command line clap refused, or `--help` / `--version`.
fn parse_failed(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    match e.kind() {
        Clap::DisplayHelp | Clap::DisplayVersion => {
            // Help goes to stdout; nowhere to report if that fails.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let err = usage_error(e);
            if std::io::stderr().is_terminal() {
                // clap's own rendering, with colour and suggestions.
                let _ = e.print();
            } else {
                err.report();
            }
            ExitCode::from(err.kind().exit_code())
        }
    }
}

/// Condenses clap's multi-line error into a message (its first paragraph)
/// and a hint (its tip, else the usage line).
fn usage_error(e: &clap::Error) -> Error {
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let message = match e.kind() {
        clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            "a subcommand is required".to_owned()
        }
        _ if first.is_empty() => "invalid arguments".to_owned(),
        _ => {
            let joined = first.join(" ");
            joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
        }
    };
    let mut lines = text.lines().map(str::trim);
    let tip = lines.clone().find_map(|l| l.strip_prefix("tip: "));
    let usage = lines.find(|l| l.starts_with("Usage: "));
    Error::usage(message).with_hint(tip.or(usage).unwrap_or("run `plex --help`"))
}
