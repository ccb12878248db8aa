//! The command line: subcommands and options, with their `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::access::Access;
use crate::units::{parse_duration, parse_size, parse_tag};

/// What every `--help` ends with: the contracts scripts rely on.
const CONTRACTS: &str = "\
Pools:
  A name (no `/`) is the file <dir>/<name>.plex, where <dir> is --dir, else
  $PLEX_DIR, else $XDG_DATA_HOME/plex/pools, else ~/.local/share/plex/pools.
  An argument containing `/` is the path of a pool file. fetch, follow,
  pool info and pool list open pools read-only: they take no lock, wait for
  no writer and never change the file (a pool a crashed writer left behind
  is recovered by the next feed).
  tcp://HOST:PORT/NAME, ws://HOST:PORT[/PATH]/NAME or
  tls://HOST:PORT/NAME[?fingerprint=sha256:HEX] is pool NAME of a
  `plex serve` (its --listen): feed, fetch, follow and pool create|info|
  delete take it with the same output and exit codes; `plex pool list URL`
  lists a server's pools. A remote follow resumes after its last seq when
  the connection fails; 10 (Unreachable) means no server answered. A server
  that requires an access token gets --token (or $PLEX_TOKEN); without it,
  or with one it refuses, plex exits 6 (Permission).

Output:
  One JSON record per line on stdout. A message prints as
  {\"seq\":N,\"time\":\"<RFC 3339 UTC, ns>\",\"meta\":{\"tags\":[...]},\"data\":<JSON>}.
  Data that is not one JSON value (written by another tool) prints as a string,
  and meta.encoding says how: \"text\" (the UTF-8 text) or \"base64\".

Errors:
  On a terminal, stderr gets readable text. Otherwise it gets one line
  {\"error\":{\"kind\":K,\"message\":M,\"hint\":H,\"path\":P,\"seq\":S,\"line\":L}},
  fields absent when unknown. Exit codes: 0 ok, 1 Internal, 2 Usage,
  3 NotFound, 4 AlreadyExists, 5 Busy, 6 Permission, 7 Corrupt, 8 Io,
  9 RetentionGap, 10 Unreachable (bus broker), 11 NoResponders,
  12 ResponderGone, 65 feed --errors skip skipped bad lines (the others were
  stored), 124 follow or bus request timed out. If stdout is closed early (a
  broken pipe), plex stops quietly with 0.";

/// Where `plex bus` finds its broker unless told.
pub(crate) const DEFAULT_BUS_URL: &str = "tcp://127.0.0.1:7070";

/// Persistent pools of JSON messages that many processes append to, read and follow.
#[derive(Debug, Parser)]
#[command(name = "plex", version, after_long_help = CONTRACTS, max_term_width = 100)]
pub(crate) struct Cli {
    /// Directory of named pools [default: $PLEX_DIR, else $XDG_DATA_HOME/plex/pools,
    /// else ~/.local/share/plex/pools]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, inspect, list and delete pools
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Append messages: one JSON argument, or JSON Lines from stdin or --file
    ///
    /// Each message's data is its JSON value stored as compact JSON bytes
    /// (whitespace between tokens removed; numbers and strings byte for byte).
    /// Prints a receipt {"seq":N,"time":"...","tags":[...]} per message, with
    /// the time stored in it. Input is streamed, up to the pool's max_message
    /// bytes per line; lines already read are appended together (one sync per
    /// batch with --durability flush), never past a bad line or a wait for
    /// more input. Blank lines are ignored. When stderr is a terminal, --file
    /// with stdout redirected shows a progress bar, feeding a file or stdin
    /// ends with a rate summary on stderr, and a warning says if opening the
    /// pool found damaged messages or discarded a crashed writer's
    /// unpublished ones.
    ///
    /// A bad line (not UTF-8, not one JSON value, or too large for the pool)
    /// is reported with its line number. With `--errors stop` plex exits 2
    /// at the first one, after the receipts of the lines before it. With
    /// `--errors skip` each bad line is reported on stderr and the rest are
    /// fed; the exit code is then 65 if any line was skipped (0 if none).
    #[command(verbatim_doc_comment)]
    Feed(FeedArgs),
    /// Print the message with one seq
    Fetch(FetchArgs),
    /// Print messages as they are appended
    ///
    /// Starts with new messages only (with --no-follow: every message held),
    /// or with the last N (--tail) or from a seq (--since). Sleeps on the
    /// pool's cross-process wake-up (a futex), re-checking every 100 ms at
    /// most in case a wake-up is missed. Without write permission on the
    /// pool file it cannot register for wake-ups, and notices appends within
    /// those 100 ms.
    ///
    /// If the pool overwrites messages before they are read (the reader fell
    /// behind retention), plex reports the lost seqs on stderr as a
    /// RetentionGap error and continues with the oldest message held; the
    /// exit code is then 9, even if the run ends by --timeout. A message
    /// whose stored frame is damaged is reported as a Corrupt error with its
    /// seq, and the messages after it follow; the exit code is then 7. The
    /// first such report decides the exit code.
    #[command(verbatim_doc_comment)]
    Follow(FollowArgs),
    /// Request/reply and publish/subscribe through a bus broker
    ///
    /// Clients connect to a broker (`plex bus broker`) by URL: tcp://host:port,
    /// ws://host:port/path or tls://host:port[?fingerprint=sha256:HEX]. A request
    /// goes to one responder of its channel; a published message goes to every
    /// subscriber of a matching pattern (a channel, or a prefix ending in `*`).
    #[command(subcommand, verbatim_doc_comment)]
    Bus(BusCommand),
    /// Serve the pool directory over plex/1 (remote pools, the bus, store
    /// ports) and HTTP (Plasmite's remote protocol v0)
    ///
    /// On plex/1 (--listen, tcp://, ws:// or tls://) it serves remote pools
    /// (what `plex feed|fetch|follow|pool tcp://HOST:PORT/NAME` use), the bus
    /// (`plex bus … --url tcp://HOST:PORT`) and the store ports of the Plex
    /// layer: `kv` (a key-value store, DIR/kv.redb) and `pool/NAME` per
    /// pool, on lane `rpc`. tcp:// and ws:// must be on loopback and take no
    /// credentials. Other machines come over tls:// (with the certificate
    /// flags below): each connection first authenticates with a live
    /// access token (clients' --token or PLEX_TOKEN), and until it has,
    /// nothing else on it is served; a missing, unknown or revoked token
    /// is refused with its reason and the connection closed (revoking a
    /// token closes the connections it opened too), and a client that does
    /// not authenticate within 10 s is dropped. --require-token
    /// asks this of loopback listeners too. Store ports then take any caps:
    /// the connection's token is the access control.
    ///
    /// Prints the HTTP URL and then each plex/1 URL, a line each, then
    /// serves until SIGINT or SIGTERM: it then stops accepting, ends tails,
    /// lets requests and sessions finish (5 s at most), syncs the pools it
    /// opened, and exits 0. Plasmite's clients work against its HTTP URL:
    /// `plasmite fetch|follow|pool info URL/POOL`, `plasmite pool list URL`,
    /// and its Rust RemoteClient. Routes:
    /// GET|POST /v0/pools, POST /v0/pools/open, GET /v0/pools/{pool}/info,
    /// DELETE /v0/pools/{pool}, POST /v0/pools/{pool}/append,
    /// GET /v0/pools/{pool}/messages/{seq}, GET /v0/pools/{pool}/tail
    /// (JSON Lines: since_seq, max, timeout_ms, gap_policy, tag), GET /healthz.
    /// GET / is a web page that watches pools live: open the printed URL.
    ///
    /// On http:// the listener must be on loopback and takes no credentials,
    /// like Plasmite's local listener: requests whose Host or Origin is not
    /// this machine get 403 (DNS-rebinding protection). Other machines come
    /// over https:// (--tls-cert and --tls-key, or --tls-self-signed), where
    /// every request but /healthz needs `Authorization: Bearer <secret>` of a
    /// live token (`plex token create`), else 401; an http:// address off
    /// loopback is refused (exit 2). Logs go to stderr, filtered by RUST_LOG
    /// (default: warn).
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Create, list and revoke the access tokens of `plex serve`
    ///
    /// Tokens belong to the pool directory (--dir): their SHA-256 hashes are
    /// kept in DIR/.plex-serve/tokens.json (mode 0600), never the secrets.
    /// `create` prints the secret once; clients send it as
    /// `Authorization: Bearer <secret>` over https://, and plex clients as
    /// --token or PLEX_TOKEN over plex/1. A running `plex serve` sees a new or
    /// revoked token at the next request or plex/1 connection, and closes
    /// the plex/1 connections a revoked token opened within a second.
    #[command(subcommand, verbatim_doc_comment)]
    Token(TokenCommand),
}

/// `plex token …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it with its secret (shown this once):
    /// {"id":ID,"name":NAME,"created":TIME,"revoked":false,"secret":SECRET}
    Create(TokenCreateArgs),
    /// Print every token, one per line, without secrets
    List,
    /// Revoke a token by id or name; the record printed shows it revoked
    Revoke(TokenRevokeArgs),
}

/// `plex token create`.
#[derive(Debug, Args)]
pub(crate) struct TokenCreateArgs {
    /// A name for whoever gets the token (unique in the directory)
    pub(crate) name: String,
}

/// `plex token revoke`.
#[derive(Debug, Args)]
pub(crate) struct TokenRevokeArgs {
    /// The token's id or name
    pub(crate) token: String,
}

/// `plex serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen: http://HOST:PORT on loopback, or https://HOST:PORT
    /// anywhere (port 0 picks a free one)
    #[arg(long, value_name = "URL", default_value = plex_serve::DEFAULT_HTTP)]
    pub(crate) http: String,
    /// Where to listen on plex/1: tcp://HOST:PORT or ws://HOST:PORT[/PATH] on
    /// loopback, or tls://HOST:PORT anywhere (with a certificate; off loopback
    /// its clients need an access token); repeat for more listeners
    #[arg(long, value_name = "URL", default_value = plex_serve::DEFAULT_PLEX)]
    pub(crate) listen: Vec<String>,
    /// Require an access token of every plex/1 client, on loopback listeners
    /// too (off loopback they always need one)
    #[arg(long)]
    pub(crate) require_token: bool,
    /// The https:// and tls:// listeners' certificate chain (PEM)
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The https:// and tls:// listeners' private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate for the https:// and tls://
    /// listeners (for development; its SHA-256 fingerprint is printed on
    /// stderr, for clients to pin with ?fingerprint=)
    #[arg(long)]
    pub(crate) tls_self_signed: bool,
}

/// `plex bus …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BusCommand {
    /// Send a request to one responder and print its reply (raw bytes)
    ///
    /// The request is DATA, or stdin streamed to the end when DATA is absent.
    /// Exits 11 (NoResponders) at once if nothing responds on CHANNEL, 12
    /// (ResponderGone) if the responder failed before it answered, 124
    /// (Timeout) after --timeout, 10 (Unreachable) if the broker cannot be
    /// reached or the connection fails.
    #[command(verbatim_doc_comment)]
    Request(RequestArgs),
    /// Answer requests by running a command per request
    ///
    /// The command gets the request body on stdin; what it prints on stdout
    /// is the reply; its stderr is plex's. A command that exits non-zero
    /// leaves its request unanswered (the requester sees ResponderGone, exit
    /// 12) and a ResponderGone line on stderr. A requester that gives up
    /// kills its command. Runs until killed; exits 10 if the connection to
    /// the broker ends, or with the error's code if the command cannot be
    /// started.
    #[command(verbatim_doc_comment)]
    Reply(ReplyArgs),
    /// Publish one message: DATA, or all of stdin (or one per line)
    Pub(PubArgs),
    /// Print the messages published to channels matching PATTERN
    ///
    /// One line per message: its payload, or with --json
    /// {"channel":C,"payload":P,"encoding":E} where E is "text" (P is the
    /// UTF-8 payload) or "base64" (P is its standard base64). If the broker
    /// dropped messages because this subscriber fell behind, a RetentionGap
    /// line says how many on stderr (with --json also a {"gap":N} record on
    /// stdout, in stream order) and the exit code is then 9.
    #[command(verbatim_doc_comment)]
    Sub(SubArgs),
    /// Run a broker, printing the URL it listens on (one line)
    Broker(BrokerArgs),
}

/// The broker a `plex bus` client talks to.
#[derive(Debug, Args)]
pub(crate) struct BusUrl {
    /// The broker's URL (tcp://, ws:// or tls://)
    #[arg(long, value_name = "URL", default_value = DEFAULT_BUS_URL)]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `plex bus request`.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The channel to send to
    #[arg(value_name = "CHANNEL")]
    pub(crate) channel: String,
    /// The request body; without it, stdin is streamed
    #[arg(value_name = "DATA")]
    pub(crate) data: Option<String>,
    #[command(flatten)]
    pub(crate) bus: BusUrl,
    /// How long to wait for the reply (like 500ms, 30s, 2m); 0s means the
    /// default [default: 30s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
}

/// `plex bus reply`.
#[derive(Debug, Args)]
pub(crate) struct ReplyArgs {
    /// The channel (or pattern ending in `*`) to answer
    #[arg(value_name = "CHANNEL")]
    pub(crate) channel: String,
    #[command(flatten)]
    pub(crate) bus: BusUrl,
    /// How many requests may run at once (each in its own process)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

/// `plex bus pub`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    /// The channel to publish to
    #[arg(value_name = "CHANNEL")]
    pub(crate) channel: String,
    /// The message; without it, all of stdin is one message
    #[arg(value_name = "DATA", conflicts_with = "lines")]
    pub(crate) data: Option<String>,
    #[command(flatten)]
    pub(crate) bus: BusUrl,
    /// Publish each line of stdin (without its newline) as a message
    #[arg(long)]
    pub(crate) lines: bool,
}

/// `plex bus sub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    /// A channel, or a prefix ending in `*` (every channel starting with it)
    #[arg(value_name = "PATTERN")]
    pub(crate) pattern: String,
    #[command(flatten)]
    pub(crate) bus: BusUrl,
    /// Print each message as a JSON record with its channel
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit after printing N messages
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
}

/// `plex bus broker`.
#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// Where to listen: tcp://host:port or ws://host:port/path (port 0
    /// picks a free one)
    #[arg(long, value_name = "URL", default_value = DEFAULT_BUS_URL)]
    pub(crate) listen: String,
    /// The largest message a publisher may send: bytes with an optional K,
    /// M or G suffix; a larger one ends that publisher's stream. Requests
    /// and replies are streamed and have no limit [default: 64M]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub(crate) max_payload: Option<u64>,
    /// What the broker holds for one subscriber that reads slower than
    /// messages come [default: 8M]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub(crate) subscriber_buffer: Option<u64>,
    /// What all subscribers' buffers together may hold; past it each is
    /// treated as full [default: 256M]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub(crate) max_buffered: Option<u64>,
    /// What happens to a subscriber whose buffer is full
    #[arg(long, value_enum, value_name = "POLICY", default_value = "drop")]
    pub(crate) slow_policy: SlowPolicyArg,
}

/// `--slow-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SlowPolicyArg {
    /// Drop its newest messages and tell it how many (a gap notice)
    Drop,
    /// End its subscription (it sees SlowConsumer)
    Disconnect,
}

/// `plex pool …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PoolCommand {
    /// Create pools (and the pool directory), printing each one's info
    Create(CreateArgs),
    /// Print a pool's size, seqs and limits, and how many messages held are
    /// damaged (it validates every one)
    Info(InfoArgs),
    /// Print every pool in the pool directory, one per line
    List(ListArgs),
    /// Delete pools
    ///
    /// Refuses files that do not start like a pool (FORMAT.md magic
    /// `PLEXPOOL`), so a mistyped path cannot delete another file. Other
    /// processes that have the pool open keep using it until they close it.
    #[command(verbatim_doc_comment)]
    Delete(DeleteArgs),
}

/// `plex pool list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// A `plex serve` to list the pools of (tcp://HOST:PORT,
    /// ws://HOST:PORT[/PATH] or tls://HOST:PORT) instead of the pool directory
    #[arg(value_name = "SERVER", value_parser = parse_server)]
    pub(crate) server: Option<String>,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// A `plex serve` URL for `plex pool list`.
fn parse_server(arg: &str) -> Result<String, String> {
    if crate::remote::RemoteRef::is_server(std::ffi::OsStr::new(arg)) {
        Ok(arg.to_owned())
    } else {
        Err("expected tcp://HOST:PORT, ws://HOST:PORT[/PATH] or tls://HOST:PORT".into())
    }
}

/// `plex pool create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Pool names or paths; all are checked before any is created
    #[arg(required = true, value_name = "POOL")]
    pub(crate) pools: Vec<OsString>,
    /// File size: bytes with an optional K, M or G suffix (powers of 1024);
    /// a multiple of 4096 [default: 64M]
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub(crate) size: Option<u64>,
    /// Index slots for reads by seq [default: one per 512 bytes of ring]
    #[arg(long, value_name = "N")]
    pub(crate) index_capacity: Option<u64>,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `plex pool info`.
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// Pool name or path
    #[arg(value_name = "POOL")]
    pub(crate) pool: OsString,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `plex pool delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// Pool names or paths; all are checked before any is deleted
    #[arg(required = true, value_name = "POOL")]
    pub(crate) pools: Vec<OsString>,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `plex feed`.
#[derive(Debug, Args)]
pub(crate) struct FeedArgs {
    /// Pool name or path
    #[arg(value_name = "POOL")]
    pub(crate) pool: OsString,
    /// One message as a JSON value; without it, JSON Lines are read from stdin
    #[arg(value_name = "JSON", conflicts_with = "file")]
    pub(crate) json: Option<String>,
    /// Read JSON Lines from this file instead of stdin
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
    /// Tag every message (repeatable)
    #[arg(long = "tag", value_name = "TAG", value_parser = parse_tag)]
    pub(crate) tags: Vec<String>,
    /// fast: acknowledged once visible to readers (survives a crash of plex);
    /// flush: acknowledged once on stable storage (survives power loss)
    #[arg(long, value_enum, default_value_t = DurabilityArg::Fast)]
    pub(crate) durability: DurabilityArg,
    /// What a bad input line does: stop feeding, or skip it and go on
    #[arg(long, value_enum, default_value_t = OnError::Stop)]
    pub(crate) errors: OnError,
    /// Create the pool first if it does not exist (as `plex pool create`
    /// would, with --create-size); an existing pool is fed as it is
    #[arg(long)]
    pub(crate) create: bool,
    /// The size of the pool --create creates [default: 64M]. Given, it must
    /// also be the size of an existing pool: else plex exits 4
    /// (AlreadyExists) and feeds nothing
    #[arg(long, value_parser = parse_size, value_name = "SIZE", requires = "create")]
    pub(crate) create_size: Option<u64>,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `--durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DurabilityArg {
    /// Acknowledge once published in the shared mapping
    Fast,
    /// Acknowledge once synced to stable storage
    Flush,
}

/// `--errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnError {
    /// Exit at the first bad line
    Stop,
    /// Report each bad line and feed the others; exit 65 if any was skipped
    Skip,
}

/// `plex fetch`.
#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// Pool name or path
    #[arg(value_name = "POOL")]
    pub(crate) pool: OsString,
    /// The message's seq
    #[arg(value_name = "SEQ")]
    pub(crate) seq: u64,
    #[command(flatten)]
    pub(crate) access: Access,
}

/// `plex follow`.
#[derive(Debug, Args)]
pub(crate) struct FollowArgs {
    /// Pool name or path
    #[arg(value_name = "POOL")]
    pub(crate) pool: OsString,
    /// Start with the last N messages held
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub(crate) tail: Option<u64>,
    /// Start at this seq
    #[arg(long, value_name = "SEQ")]
    pub(crate) since: Option<u64>,
    /// Exit with code 124 if no next message arrives within DUR (like 500ms,
    /// 30s, 2m, 1h)
    #[arg(long, value_name = "DUR", value_parser = parse_duration, conflicts_with = "no_follow")]
    pub(crate) timeout: Option<Duration>,
    /// Exit after printing one message
    #[arg(long)]
    pub(crate) one: bool,
    /// Print the messages held and exit instead of waiting for more
    #[arg(long)]
    pub(crate) no_follow: bool,
    #[command(flatten)]
    pub(crate) access: Access,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
