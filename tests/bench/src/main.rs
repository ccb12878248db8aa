//! `plex-bench`: Plex side by side with its peers, in one process.
//!
//! `cargo run --release -p plex-bench -- <suite> [--quick]` runs a suite of
//! scenarios, prints a table and writes JSON to `target/plex-bench/<suite>.json`.

mod bus;
mod counting_alloc;
mod cpu;
mod latency;
mod mux;
mod pattern;
mod proto;
mod protomux;
mod report;
mod rpc;
mod serve;
mod store;

use std::io::{self, Write};
use std::process::ExitCode;

/// Counts live heap bytes for the memory scenarios.
#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

const USAGE: &str = "\
usage: plex-bench <suite> [--quick]

suites:
  proto    the sans-IO protocol in memory: codec, bulk transfer, stream churn, memory
  mux      plex on tokio over loopback TCP against raw TCP, yamux and h2:
           bulk, RPC, stream open rate, idle stream memory; over tls:// against
           raw rustls; bulk through a strelaysrv it runs on loopback (relay://)
           against raw relayed sessions
  store    plex-store pools against plasmite's: appends, random gets, follow latency, reads
  rpc      store-port get and put over plex RPC against gRPC (tonic), loopback TCP on
           tokio, 1 and 64 calls in flight
  protomux the Rust peer on the Protomux wire against a JavaScript Protomux peer
           (npm protomux), both serving the same JavaScript client: echo, store-port gets
  bus      plex-bus broker and clients against NATS (nats-server, async-nats; installed with
           apt-get when missing), loopback TCP on tokio: request/reply with 1 and 64 in
           flight (128 B, 16 KiB), publish/subscribe fan-out to 1 and 16 subscribers
  serve    plex serve against plasmite serve (the plasmite 1.2.1 CLI, installed into
           target/plasmite-cli when missing), loopback TCP: acknowledged remote appends
           (1 and 8 clients, 1 KiB) and follow latency; plex/1 with Plex's RemotePools,
           and plex serve's HTTP endpoint with Plasmite's RemoteClient

options:
  --quick  fewer and smaller runs (about a minute)
  -h, --help  print this help";

/// A benchmark suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    Proto,
    Mux,
    Store,
    Rpc,
    Protomux,
    Bus,
    Serve,
}

impl Suite {
    fn from_arg(arg: &str) -> Option<Suite> {
        match arg {
            "proto" => Some(Suite::Proto),
            "mux" => Some(Suite::Mux),
            "store" => Some(Suite::Store),
            "rpc" => Some(Suite::Rpc),
            "protomux" => Some(Suite::Protomux),
            "bus" => Some(Suite::Bus),
            "serve" => Some(Suite::Serve),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Suite::Proto => "proto",
            Suite::Mux => "mux",
            Suite::Store => "store",
            Suite::Rpc => "rpc",
            Suite::Protomux => "protomux",
            Suite::Bus => "bus",
            Suite::Serve => "serve",
        }
    }
}

/// How hard to run a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Fewer repetitions and smaller sizes.
    pub(crate) quick: bool,
}

impl Options {
    /// Repetitions of each scenario; odd, so the median is a real run.
    pub(crate) fn runs(self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Run(Suite, Options),
    Help,
}

fn main() -> ExitCode {
    // The `store` suite runs its follower in a child process: this binary.
    if std::env::args().nth(1).as_deref() == Some(store::FOLLOWER_COMMAND) {
        return store::follower_main(std::env::args().skip(2));
    }
    // The `mux` suite measures idle streams in a fresh process: this binary.
    if std::env::args().nth(1).as_deref() == Some(mux::IDLE_COMMAND) {
        return mux::idle_main(std::env::args().skip(2));
    }
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("plex-bench: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (suite, options) = match command {
        Command::Help => return finish(writeln!(io::stdout(), "{USAGE}")),
        Command::Run(suite, options) => (suite, options),
    };
    let result = match suite {
        Suite::Proto => proto::run(options),
        Suite::Mux => mux::run(options).map_err(|e| e as Box<dyn std::error::Error>),
        Suite::Store => store::run(options).map_err(|e| e as Box<dyn std::error::Error>),
        Suite::Rpc => rpc::run(options).map_err(|e| e as Box<dyn std::error::Error>),
        Suite::Protomux => protomux::run(options).map_err(|e| e as Box<dyn std::error::Error>),
        Suite::Bus => bus::run(options).map_err(|e| e as Box<dyn std::error::Error>),
        Suite::Serve => serve::run(options).map_err(|e| e as Box<dyn std::error::Error>),
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("plex-bench {}: {e}", suite.name());
            return ExitCode::FAILURE;
        }
    };
    let path = match report.write_json(suite.name()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("plex-bench: cannot write the JSON report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    finish(
        report
            .write_table(&mut out)
            .and_then(|()| writeln!(out, "\nwrote {}", path.display())),
    )
}

/// The exit status after writing to stdout. A closed pipe (`| head`) is not
/// a failure.
fn finish(written: io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plex-bench: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the arguments after the program name.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut suite: Option<Suite> = None;
    let mut options = Options { quick: false };
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" => options.quick = true,
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            name => {
                if let Some(first) = suite {
                    return Err(format!(
                        "one suite at a time (got `{}` and `{name}`)",
                        first.name()
                    ));
                }
                suite = Some(Suite::from_arg(name).ok_or(format!("unknown suite `{name}`"))?);
            }
        }
    }
    let suite = suite.ok_or("no suite given")?;
    Ok(Command::Run(suite, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_suite_and_quick_in_any_order() {
        let quick = Options { quick: true };
        assert_eq!(
            parse(&["proto", "--quick"]),
            Ok(Command::Run(Suite::Proto, quick))
        );
        assert_eq!(
            parse(&["--quick", "proto"]),
            Ok(Command::Run(Suite::Proto, quick))
        );
        let full = Options { quick: false };
        assert_eq!(parse(&["proto"]), Ok(Command::Run(Suite::Proto, full)));
        assert_eq!(parse(&["mux"]), Ok(Command::Run(Suite::Mux, full)));
        assert_eq!(parse(&["store"]), Ok(Command::Run(Suite::Store, full)));
        assert_eq!(parse(&["rpc"]), Ok(Command::Run(Suite::Rpc, full)));
        assert_eq!(parse(&["bus"]), Ok(Command::Run(Suite::Bus, full)));
        assert_eq!(parse(&["serve"]), Ok(Command::Run(Suite::Serve, full)));
        assert_eq!(parse(&["proto", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert_eq!(parse(&[]), Err("no suite given".into()));
        assert_eq!(parse(&["pools"]), Err("unknown suite `pools`".into()));
        assert_eq!(
            parse(&["proto", "--fast"]),
            Err("unknown option `--fast`".into())
        );
        assert!(parse(&["proto", "mux"]).is_err());
    }
}
