//! Scan ranges: a prefix, four optional bounds and a direction.

use std::cmp::Ordering;
use std::ops::Bound;

use bytes::Bytes;
use plex_proto::rpc::Scan;

/// Which keys a scan visits, and in which order.
///
/// All conditions hold at once: a key is in the range if it starts with
/// `prefix` and satisfies every bound that is set. Build one with the
/// methods:
///
/// ```
/// use plex_peer::Range;
/// let range = Range::prefix("log/").gte("log/0003").reverse();
/// assert!(range.contains(b"log/0004"));
/// assert!(!range.contains(b"log/0002"));
/// assert!(!range.contains(b"mog/0004"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Only keys starting with this; empty means every key.
    pub prefix: Bytes,
    /// Keys `>=` this.
    pub gte: Option<Bytes>,
    /// Keys `>` this.
    pub gt: Option<Bytes>,
    /// Keys `<=` this.
    pub lte: Option<Bytes>,
    /// Keys `<` this.
    pub lt: Option<Bytes>,
    /// Greatest key first.
    pub reverse: bool,
}

impl Range {
    /// Every key, in order.
    pub fn all() -> Range {
        Range::default()
    }

    /// The keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<Bytes>) -> Range {
        Range {
            prefix: prefix.into(),
            ..Range::default()
        }
    }

    /// Also requires keys `>= key`.
    pub fn gte(mut self, key: impl Into<Bytes>) -> Range {
        self.gte = Some(key.into());
        self
    }

    /// Also requires keys `> key`.
    pub fn gt(mut self, key: impl Into<Bytes>) -> Range {
        self.gt = Some(key.into());
        self
    }

    /// Also requires keys `<= key`.
    pub fn lte(mut self, key: impl Into<Bytes>) -> Range {
        self.lte = Some(key.into());
        self
    }

    /// Also requires keys `< key`.
    pub fn lt(mut self, key: impl Into<Bytes>) -> Range {
        self.lt = Some(key.into());
        self
    }

    /// Greatest key first.
    pub fn reverse(mut self) -> Range {
        self.reverse = true;
        self
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix)
            && self.gte.as_deref().is_none_or(|b| key >= b)
            && self.gt.as_deref().is_none_or(|b| key > b)
            && self.lte.as_deref().is_none_or(|b| key <= b)
            && self.lt.as_deref().is_none_or(|b| key < b)
    }

    /// The tightest lower and upper bounds on the keys in the range (the
    /// prefix included), for an ordered map's range query. `None` when the
    /// range is empty: ordered maps panic on a start above the end.
    pub fn bounds(&self) -> Option<(Bound<Bytes>, Bound<Bytes>)> {
        let mut lower = Bound::Unbounded;
        if !self.prefix.is_empty() {
            lower = Bound::Included(self.prefix.clone());
        }
        for bound in [
            self.gte.clone().map(Bound::Included),
            self.gt.clone().map(Bound::Excluded),
        ]
        .into_iter()
        .flatten()
        {
            lower = tighter_lower(lower, bound);
        }
        let mut upper = match prefix_end(&self.prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        for bound in [
            self.lte.clone().map(Bound::Included),
            self.lt.clone().map(Bound::Excluded),
        ]
        .into_iter()
        .flatten()
        {
            upper = tighter_upper(upper, bound);
        }
        (!bounds_cross(&lower, &upper)).then_some((lower, upper))
    }

    /// The SCAN body for this range, carrying `caps`.
    pub fn to_scan(&self, caps: Bytes) -> Scan {
        Scan {
            prefix: self.prefix.clone(),
            reverse: self.reverse,
            gte: self.gte.clone(),
            gt: self.gt.clone(),
            lte: self.lte.clone(),
            lt: self.lt.clone(),
            caps,
        }
    }
}

impl From<Scan> for Range {
    fn from(scan: Scan) -> Range {
        Range {
            prefix: scan.prefix,
            gte: scan.gte,
            gt: scan.gt,
            lte: scan.lte,
            lt: scan.lt,
            reverse: scan.reverse,
        }
    }
}

/// Whether no key lies between `lower` and `upper`. Ordered maps
/// (`BTreeMap::range`, redb) panic on such bounds; check first.
pub fn bounds_cross(lower: &Bound<Bytes>, upper: &Bound<Bytes>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

/// The least key greater than every key starting with `prefix`: the
/// prefix with its last byte below 0xff incremented and the rest cut off.
/// `None` for an empty or all-0xff prefix (no upper limit).
fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end.into())
}

fn key_of(bound: &Bound<Bytes>) -> Option<&Bytes> {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

fn tighter_lower(a: Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    let (Some(ka), Some(kb)) = (key_of(&a), key_of(&b)) else {
        return if key_of(&a).is_some() { a } else { b };
    };
    match ka.cmp(kb) {
        Ordering::Greater => a,
        Ordering::Less => b,
        Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
        Ordering::Equal => b,
    }
}

fn tighter_upper(a: Bound<Bytes>, b: Bound<Bytes>) -> Bound<Bytes> {
    let (Some(ka), Some(kb)) = (key_of(&a), key_of(&b)) else {
        return if key_of(&a).is_some() { a } else { b };
    };
    match ka.cmp(kb) {
        Ordering::Less => a,
        Ordering::Greater => b,
        Ordering::Equal if matches!(a, Bound::Excluded(_)) => a,
        Ordering::Equal => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys_in(range: &Range, keys: &std::collections::BTreeSet<Vec<u8>>) -> Vec<Vec<u8>> {
        let Some((lo, hi)) = range.bounds() else {
            return Vec::new();
        };
        let lo = lo.map(|b| b.to_vec());
        let hi = hi.map(|b| b.to_vec());
        keys.range::<Vec<u8>, _>((lo, hi)).cloned().collect()
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"a\xff\xff").as_deref(), Some(&b"b"[..]));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn crossed_bounds_are_empty_not_a_panic() {
        assert_eq!(Range::all().gte("b").lt("a").bounds(), None);
        assert_eq!(Range::all().gt("a").lte("a").bounds(), None);
        assert_eq!(Range::prefix("b").lt("a").bounds(), None);
        assert!(Range::all().gte("a").lte("a").bounds().is_some());
    }

    proptest! {
        /// The bounds select exactly the keys `contains` accepts.
        #[test]
        fn bounds_agree_with_contains(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..4, 0..4), 0..40),
            prefix in proptest::collection::vec(prop_oneof![Just(0u8), Just(3u8), Just(0xff)], 0..2),
            gte in proptest::option::of(proptest::collection::vec(0u8..4, 0..3)),
            gt in proptest::option::of(proptest::collection::vec(0u8..4, 0..3)),
            lte in proptest::option::of(proptest::collection::vec(0u8..4, 0..3)),
            lt in proptest::option::of(proptest::collection::vec(0u8..4, 0..3)),
        ) {
            let range = Range {
                prefix: prefix.into(),
                gte: gte.map(Bytes::from),
                gt: gt.map(Bytes::from),
                lte: lte.map(Bytes::from),
                lt: lt.map(Bytes::from),
                reverse: false,
            };
            let expected: Vec<Vec<u8>> = keys.iter().filter(|k| range.contains(k)).cloned().collect();
            prop_assert_eq!(keys_in(&range, &keys), expected);
        }
    }
}
