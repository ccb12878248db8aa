//! Buffered stdout, flushed before the command blocks and at exit.

use std::io::{self, BufWriter, StdoutLock, Write};

use plex_store::Message;
use serde::Serialize;

use crate::error::{Error, Result};

/// Where records go: stdout, one JSON record per line.
pub(crate) struct Out {
    writer: BufWriter<StdoutLock<'static>>,
    line: Vec<u8>,
}

impl Out {
    /// Takes the stdout lock for the life of the command.
    pub(crate) fn new() -> Out {
        Out {
            writer: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            line: Vec::new(),
        }
    }

    /// Writes the envelope of `msg`.
    pub(crate) fn envelope(&mut self, msg: &Message) -> Result<()> {
        self.line.clear();
        plex_serve::wire::envelope_into(msg, &mut self.line);
        self.line.push(b'\n');
        self.writer
            .write_all(&self.line)
            .map_err(|e| Error::output(&e))
    }

    /// Writes `rec` as one JSON line.
    pub(crate) fn record(&mut self, rec: &impl Serialize) -> Result<()> {
        self.line.clear();
        // Records are plain structs of strings and integers.
        serde_json::to_writer(&mut self.line, rec)
            .map_err(|e| Error::new(crate::error::Kind::Internal, e.to_string()))?;
        self.line.push(b'\n');
        self.writer
            .write_all(&self.line)
            .map_err(|e| Error::output(&e))
    }

    /// Writes `bytes` as they are.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).map_err(|e| Error::output(&e))
    }

    /// Pushes buffered records to stdout.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::output(&e))
    }
}
