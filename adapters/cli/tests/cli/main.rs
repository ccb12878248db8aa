//! Black-box tests of the `plex` binary: every command, every reachable
//! exit code, and the JSON error line of each.
//!
//! Not reachable from the command line, hence not tested here: exit 1
//! (Internal: a bug) and exit 5 (Busy: the store blocks on its writer lock
//! and reports Busy only for a reader lapped by writers on every retry).
//! Exit 6 (Permission) is checked as an unprivileged user: run as root, the
//! test drops to `nobody` for the child.

#[macro_use]
mod common;
mod access;
mod bus;
mod damage;
mod feed;
mod pools;
mod read;
mod serve;
mod token;
