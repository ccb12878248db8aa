//! The commands, one module per group, and how a command ends.

mod bus;
pub(crate) mod feed;
mod pool;
mod read;
mod serve;
mod token;

use crate::cli::Command;
use crate::error::{Kind, Result};
use crate::output::Out;
use crate::refs::PoolDir;

/// How a command that did not fail outright ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked was done: exit 0.
    Success,
    /// `follow --timeout` passed with no next message: exit 124.
    TimedOut,
    /// `feed --errors skip` stored every good line and skipped bad ones,
    /// each reported on stderr: exit 65. The command line was right, so not
    /// Usage (2); the input data was not, which is what 65 means in
    /// sysexits.h (`EX_DATAERR`).
    SkippedLines,
    /// The command finished, but errors of this kind were reported on
    /// stderr along the way (retention gaps, unreadable pools in a
    /// listing): exit with the kind's code.
    Reported(Kind),
}

impl Outcome {
    /// The process exit code.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::TimedOut => 124,
            Outcome::SkippedLines => 65,
            Outcome::Reported(kind) => kind.exit_code(),
        }
    }
}

/// Runs `command`, printing its records to `out`.
pub(crate) fn run(command: Command, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    match command {
        Command::Pool(command) => pool::run(command, dir, out),
        Command::Feed(args) => feed::run(args, dir, out),
        Command::Fetch(args) => read::fetch(args, dir, out),
        Command::Follow(args) => read::follow(args, dir, out),
        Command::Bus(command) => bus::run(command, out),
        Command::Serve(args) => serve::run(args, dir, out),
        Command::Token(command) => token::run(command, dir, out),
    }
}
