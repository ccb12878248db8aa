//! Line-at-a-time input with a length bound, so one huge line cannot
//! exhaust memory: its bytes past the bound are counted and dropped.

use std::io::{self, BufRead, BufReader, Read};

/// What [`Lines::next_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line within the bound is in [`Lines::line`] (without its `\n`).
    Ok,
    /// A line of this many bytes exceeded the bound and was dropped.
    TooLong(u64),
}

/// Reads `\n`-terminated lines; the last line may lack its `\n`.
pub(crate) struct Lines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    limit: usize,
    number: u64,
}

impl<R: Read> Lines<R> {
    /// Reads from `input`, keeping lines of at most `limit` bytes.
    pub(crate) fn new(input: R, limit: usize) -> Lines<R> {
        Lines {
            reader: BufReader::with_capacity(256 * 1024, input),
            line: Vec::new(),
            limit,
            number: 0,
        }
    }

    /// Whether the next read may block: nothing is buffered.
    pub(crate) fn would_block(&self) -> bool {
        self.reader.buffer().is_empty()
    }

    /// The 1-based number of the last line read.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The last line read, when it was [`Line::Ok`].
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// Reads the next line; `None` at the end of the input. `consumed` is
    /// called with the input bytes each step takes, newline included.
    pub(crate) fn next_line(&mut self, consumed: &mut impl FnMut(u64)) -> io::Result<Option<Line>> {
        self.line.clear();
        let mut len = 0u64;
        let mut started = false;
        let mut too_long = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            len += chunk.len() as u64;
            if !too_long {
                if self.line.len() + chunk.len() > self.limit {
                    too_long = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(newline.is_some());
            self.reader.consume(used);
            consumed(used as u64);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        Ok(Some(if too_long {
            Line::TooLong(len)
        } else {
            Line::Ok
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], limit: usize) -> (Vec<(u64, Line, Vec<u8>)>, u64) {
        let mut lines = Lines::new(input, limit);
        let mut total = 0;
        let mut out = Vec::new();
        while let Some(line) = lines.next_line(&mut |n| total += n).unwrap() {
            out.push((lines.number(), line, lines.line().to_vec()));
        }
        (out, total)
    }

    #[test]
    fn splits_lines_and_counts_bytes() {
        let (lines, total) = read_all(b"a\n\nbc\r\nlast", 10);
        let got: Vec<_> = lines
            .iter()
            .map(|(n, l, b)| (*n, *l, b.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (1, Line::Ok, &b"a"[..]),
                (2, Line::Ok, &b""[..]),
                (3, Line::Ok, &b"bc\r"[..]),
                (4, Line::Ok, &b"last"[..]),
            ]
        );
        assert_eq!(total, 11);
        assert!(read_all(b"", 10).0.is_empty());
    }

    #[test]
    fn drops_long_lines_and_goes_on() {
        let (lines, _) = read_all(b"12345\n123456\n1\n", 5);
        assert_eq!(lines[0].1, Line::Ok);
        assert_eq!(lines[1].1, Line::TooLong(6));
        assert_eq!(
            (lines[2].0, lines[2].1, lines[2].2.as_slice()),
            (3, Line::Ok, &b"1"[..])
        );
    }
}
