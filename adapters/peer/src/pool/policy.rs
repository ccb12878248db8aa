//! How a member is chosen: the policies, a member's metadata and
//! neonplex's formulas (`pool.js`: `effectiveWeight`, `hashKey`).

/// How the pool picks a member for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Each eligible member in turn, in the order they were added
    /// (neonplex's default). Adding or removing a member does not disturb
    /// the rotation of the others.
    #[default]
    RoundRobin,
    /// At random, with probability proportional to neonplex's weight:
    /// `weight × locality × prefer / (1 + failures) / (1 + latency_ms / 20)`,
    /// failures counting less as they age,
    /// at least `1e-4` (see [`weighted_share`]).
    Weighted {
        /// Doubles the weight of [`Locality::Local`] members
        /// (neonplex's `prefer: 'local'`).
        prefer_local: bool,
    },
    /// The member at `djb2(key) mod n` among the `n` eligible members in
    /// the order they were added, as neonplex picks it: the same key goes
    /// to the same member while the membership does not change. A call
    /// without a key (or with an empty one) goes round-robin.
    Sticky,
    /// Power of two choices: two distinct eligible members at random, and
    /// the one with the lower `peak_ewma × (in_flight + 1)` wins (tower's
    /// and Finagle's `PeakEwma`). It steers calls away from slow or busy
    /// members without any central coordination; prefer it for pools of
    /// peers with uneven latency.
    P2c,
}

/// Where a member is, relative to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Locality {
    /// The same machine.
    Local,
    /// The same local network.
    Lan,
    /// Anywhere else (neonplex's `wan` and unset).
    #[default]
    Remote,
}

impl Locality {
    /// neonplex's locality factor: local 8, lan 4, else 1.
    pub fn factor(self) -> f64 {
        match self {
            Locality::Local => 8.0,
            Locality::Lan => 4.0,
            Locality::Remote => 1.0,
        }
    }
}

/// What the pool knows about a member when it is added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberInfo {
    /// Its relative weight under [`Policy::Weighted`] (default 1). A weight
    /// that is not a finite number above 0 counts as 0, so the member only
    /// gets the floor share; weights are capped at `1e9`.
    pub weight: f64,
    /// Where it is (default [`Locality::Remote`]).
    pub locality: Locality,
}

impl Default for MemberInfo {
    fn default() -> MemberInfo {
        MemberInfo {
            weight: 1.0,
            locality: Locality::Remote,
        }
    }
}

impl MemberInfo {
    /// Weight 1, [`Locality::Remote`].
    pub fn new() -> MemberInfo {
        MemberInfo::default()
    }

    /// With `weight`.
    pub fn weight(mut self, weight: f64) -> MemberInfo {
        self.weight = weight;
        self
    }

    /// With `locality`.
    pub fn locality(mut self, locality: Locality) -> MemberInfo {
        self.locality = locality;
        self
    }

    /// The weight as the formulas use it: finite, in `0..=1e9`.
    pub(crate) fn sane_weight(&self) -> f64 {
        if self.weight.is_finite() && self.weight > 0.0 {
            self.weight.min(MAX_WEIGHT)
        } else {
            0.0
        }
    }
}

/// What one selection needs to know about the call.
#[derive(Debug, Clone, Copy)]
pub struct Selector<'a, K> {
    /// The policy to pick with.
    pub policy: Policy,
    /// The call's key, for [`Policy::Sticky`]; other policies ignore it.
    pub key: Option<&'a [u8]>,
    /// Members this call already tried: never picked again.
    pub exclude: &'a [K],
}

impl<'a, K> Selector<'a, K> {
    /// A selection with `policy`, no key and nothing excluded.
    pub fn new(policy: Policy) -> Selector<'a, K> {
        Selector {
            policy,
            key: None,
            exclude: &[],
        }
    }

    /// With the call's key.
    pub fn key(mut self, key: &'a [u8]) -> Selector<'a, K> {
        self.key = Some(key);
        self
    }

    /// Never picking a member in `exclude`.
    pub fn exclude(mut self, exclude: &'a [K]) -> Selector<'a, K> {
        self.exclude = exclude;
        self
    }
}

/// The largest weight the formulas use, so that sums stay finite.
const MAX_WEIGHT: f64 = 1e9;

/// The smallest share a member gets under [`Policy::Weighted`].
pub const WEIGHT_FLOOR: f64 = 1e-4;

/// neonplex's `effectiveWeight`: a member's unnormalized share under
/// [`Policy::Weighted`], from its `weight`, locality, failure count and
/// latency EWMA in milliseconds; never below [`WEIGHT_FLOOR`]. The
/// balancer passes the failures that still count (see
/// [`BalancerConfig::failure_memory`](super::BalancerConfig::failure_memory)).
pub fn weighted_share(
    info: &MemberInfo,
    prefer_local: bool,
    failures: f64,
    latency_ms: f64,
) -> f64 {
    let mut w = info.sane_weight() * info.locality.factor();
    if prefer_local && info.locality == Locality::Local {
        w *= 2.0;
    }
    w /= 1.0 + failures.max(0.0);
    w /= 1.0 + latency_ms.max(0.0) / 20.0;
    w.max(WEIGHT_FLOOR)
}

/// neonplex's `hashKey` (djb2) over the key's bytes: `h = 5381`, then
/// `h = h × 33 + byte` for each byte, modulo 2^32.
///
/// neonplex computes `h = ((h << 5) + h) + byte` on a JS number and returns
/// `h >>> 0`. `h << 5` wraps to 32 bits but the additions do not, so the
/// intermediate value grows; it stays an exact integer (below 2^53) for
/// keys up to 2^22 bytes, and within that every step is congruent to
/// `33h + byte` modulo 2^32, which is what this computes. A string key is
/// hashed over its UTF-8 bytes (neonplex's `b4a.from(string)`). Longer keys
/// would round in JS; neonplex's RPC payload limit (256 KiB) keeps every
/// key below that.
pub fn djb2(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| {
        h.wrapping_mul(33).wrapping_add(u32::from(b))
    })
}
