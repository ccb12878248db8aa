//! The test data: a repeating pseudo-random pattern, and ways to check that
//! a byte stream is that pattern.

/// `len` pseudo-random bytes (xorshift64), the same on every run.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// Whether `bytes` is the stream of repeated `pattern` at `offset`.
pub(crate) fn matches_pattern(pattern: &[u8], offset: usize, mut bytes: &[u8]) -> bool {
    let mut at = offset % pattern.len();
    while !bytes.is_empty() {
        let n = bytes.len().min(pattern.len() - at);
        if bytes[..n] != pattern[at..at + n] {
            return false;
        }
        bytes = &bytes[n..];
        at = 0;
    }
    true
}

/// A byte count and a checksum of every `SAMPLE_STEP`th byte of a stream,
/// in order: cheap enough to keep up with loopback TCP, and a stream with
/// bytes lost, repeated or out of place almost surely sums differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sampled {
    /// Bytes seen.
    pub(crate) len: u64,
    hash: u64,
}

/// Distance between sampled bytes: a prime, so the samples drift across
/// every buffer, frame and pattern boundary.
const SAMPLE_STEP: u64 = 4093;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Default for Sampled {
    fn default() -> Sampled {
        Sampled {
            len: 0,
            hash: FNV_OFFSET,
        }
    }
}

impl Sampled {
    /// What a stream of `len` bytes of repeated `pattern` sums to.
    pub(crate) fn of_repeated(pattern: &[u8], len: u64) -> Sampled {
        let period = pattern.len() as u64;
        let mut sum = Sampled::default();
        for offset in (0..len).step_by(SAMPLE_STEP as usize) {
            sum.mix(pattern[(offset % period) as usize]);
        }
        sum.len = len;
        sum
    }

    /// Adds the next bytes of the stream.
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        let first = (SAMPLE_STEP - self.len % SAMPLE_STEP) % SAMPLE_STEP;
        for at in (first as usize..chunk.len()).step_by(SAMPLE_STEP as usize) {
            self.mix(chunk[at]);
        }
        self.len += chunk.len() as u64;
    }

    fn mix(&mut self, byte: u8) {
        self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_check_wraps_and_catches_misplaced_bytes() {
        let p = pattern(10);
        let stream: Vec<u8> = p.iter().chain(&p).chain(&p).copied().collect();
        assert!(matches_pattern(&p, 0, &stream));
        assert!(matches_pattern(&p, 7, &stream[7..25]));
        assert!(!matches_pattern(&p, 8, &stream[7..25]));
    }

    #[test]
    fn sampled_sum_ignores_chunking_and_catches_lost_bytes() {
        let p = pattern(10_007);
        let len = 100_000;
        let stream: Vec<u8> = p.iter().cycle().take(len).copied().collect();
        let expected = Sampled::of_repeated(&p, len as u64);
        for chunk in [1, 4093, 65_536] {
            let mut sum = Sampled::default();
            stream.chunks(chunk).for_each(|c| sum.update(c));
            assert_eq!(sum, expected, "chunks of {chunk}");
        }
        let mut lossy = Sampled::default();
        lossy.update(&stream[..5000]);
        lossy.update(&stream[5001..]);
        lossy.update(&stream[..1]);
        assert_eq!(lossy.len, expected.len);
        assert_ne!(lossy, expected);
    }
}
