//! The balancer on a simulated clock: each policy's choices, cooldown,
//! call accounting and events.

use std::time::{Duration, Instant};

use crate::pool::{
    djb2, Balancer, BalancerConfig, Locality, MemberInfo, NoPeers, Outcome, Policy, PoolEvent,
    Selector,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A balancer with members `1..=n`, all weight 1 and remote.
fn with_members(n: u64) -> Balancer<u64> {
    let mut b = Balancer::new(BalancerConfig::default());
    for m in 1..=n {
        assert!(b.add(m, MemberInfo::new()));
    }
    b
}

fn pick(b: &mut Balancer<u64>, now: Instant, policy: Policy) -> u64 {
    b.select(now, &Selector::new(policy))
        .expect("a member is eligible")
}

fn picks(b: &mut Balancer<u64>, now: Instant, policy: Policy, n: usize) -> Vec<u64> {
    (0..n).map(|_| pick(b, now, policy)).collect()
}

/// One whole call: select, start, finish with `outcome`.
fn call(b: &mut Balancer<u64>, now: Instant, member: u64, outcome: Outcome) {
    assert!(b.start(&member));
    assert!(b.finish(now, &member, outcome));
}

#[test]
fn round_robin_rotates_exactly_and_keeps_turns_when_members_come_and_go() {
    let now = Instant::now();
    let mut b = with_members(3);
    let rr = Policy::RoundRobin;
    assert_eq!(picks(&mut b, now, rr, 7), [1, 2, 3, 1, 2, 3, 1]);

    // 1 went last; removing 2 leaves 3 next, then 1.
    assert!(b.remove(&2));
    assert_eq!(picks(&mut b, now, rr, 3), [3, 1, 3]);

    // 3 went last; a new member takes its turn after 3, before 1.
    b.add(4, MemberInfo::new());
    assert_eq!(picks(&mut b, now, rr, 4), [4, 1, 3, 4]);

    // Removing the member that went last does not skip anyone.
    assert!(b.remove(&4));
    assert_eq!(picks(&mut b, now, rr, 3), [1, 3, 1]);
    assert!(!b.remove(&4));
}

#[test]
fn weighted_shares_follow_neonplexs_formula() {
    let t0 = Instant::now();
    let mut b = Balancer::new(BalancerConfig::default());
    b.add(1, MemberInfo::new());
    b.add(2, MemberInfo::new().locality(Locality::Lan));
    b.add(3, MemberInfo::new().locality(Locality::Local));
    b.add(4, MemberInfo::new().weight(6.0));
    b.add(5, MemberInfo::new().weight(2.0));
    b.add(6, MemberInfo::new().weight(-3.0));
    // One failure halves member 4's share once its cooldown is over, less
    // what it has faded since: e^(-2 s / 60 s) of it still counts.
    call(&mut b, t0, 4, Outcome::Failed { latency: ms(5) });
    let member_4 = 6.0 / (1.0 + (-2.0f64 / 60.0).exp()) / 1.05;
    // One 96 ms sample: EWMA 1 × 0.8 + 96 × 0.2 = 20 ms, so ÷ (1 + 20/20).
    call(&mut b, t0, 5, Outcome::Answered { latency: ms(96) });
    let now = t0 + Duration::from_secs(2);

    // Everyone else keeps the initial 1 ms EWMA: ÷ (1 + 1/20) = ÷ 1.05.
    // Member 6's weight is not positive: the 1e-4 floor.
    let expected_plain = [1.0 / 1.05, 4.0 / 1.05, 8.0 / 1.05, member_4, 1.0, 1e-4];
    let expected_prefer = [1.0 / 1.05, 4.0 / 1.05, 16.0 / 1.05, member_4, 1.0, 1e-4];
    for (prefer_local, expected) in [(false, expected_plain), (true, expected_prefer)] {
        let draws = 100_000;
        let mut counts = [0u32; 6];
        for _ in 0..draws {
            let m = pick(&mut b, now, Policy::Weighted { prefer_local });
            counts[usize::try_from(m).unwrap() - 1] += 1;
        }
        let total: f64 = expected.iter().sum();
        for (m, (&count, &weight)) in counts.iter().zip(&expected).enumerate() {
            let share = f64::from(count) / f64::from(draws);
            let want = weight / total;
            assert!(
                (share - want).abs() < 0.01,
                "member {}: share {share:.4}, formula {want:.4} (prefer_local {prefer_local})",
                m + 1
            );
        }
    }
}

/// A member that failed often wins its weighted share back once its
/// failures have aged, instead of being penalised forever.
#[test]
fn failures_fade_from_the_weighted_share() {
    let t0 = Instant::now();
    let mut b = with_members(2);
    for _ in 0..20 {
        call(&mut b, t0, 1, Outcome::Failed { latency: ms(1) });
    }
    let share_of_1 = |b: &mut Balancer<u64>, now| {
        let draws = 20_000;
        let ones = (0..draws)
            .filter(|_| {
                pick(
                    b,
                    now,
                    Policy::Weighted {
                        prefer_local: false,
                    },
                ) == 1
            })
            .count();
        ones as f64 / f64::from(draws)
    };
    // Right after the cooldown: 1 / (1 + ~19.4) against 1.
    let early = share_of_1(&mut b, t0 + Duration::from_secs(2));
    assert!(early < 0.06, "share {early}");
    // Ten minutes on, e^-10 of 20 failures is under 0.001 of one.
    let late = share_of_1(&mut b, t0 + Duration::from_secs(600));
    assert!((late - 0.5).abs() < 0.02, "share {late}");
    // The total still counts every failure.
    assert_eq!(b.stats(t0)[0].failures, 20);
}

#[test]
fn djb2_matches_neonplexs_hash_key() {
    // By hand: 5381; 5381 × 33 + 97 ('a') = 177670; 177670 × 33 + 98 ('b') = 5863208.
    assert_eq!(djb2(b""), 5381);
    assert_eq!(djb2(b"a"), 177_670);
    assert_eq!(djb2(b"ab"), 5_863_208);
    // 'k' 'e' 'y' '-' 'a' (107 101 121 45 97): 177680, 5863541, 193496974,
    // 6385400187 mod 2^32 = 2090432891, 68984285500 mod 2^32 = 264808764.
    assert_eq!(djb2(b"key-a"), 264_808_764);
    assert_eq!(djb2(b"key-b"), 264_808_765);
    // neonplex's hashKey(b4a.from(s)) >>> 0 in node, for the values below:
    // a string is hashed over its UTF-8 bytes, and long keys wrap.
    assert_eq!(djb2("user/42".as_bytes()), 1_170_317_017);
    assert_eq!(djb2("héllo".as_bytes()), 144_619_072);
    assert_eq!(djb2(b"a much longer key that wraps around"), 3_460_534_954);
}

#[test]
fn sticky_sends_a_key_to_the_same_member_as_neonplex() {
    let now = Instant::now();
    let mut b = with_members(3);
    let sticky = |key: &'static [u8]| Selector::new(Policy::Sticky).key(key);
    for _ in 0..10 {
        // 264808764 mod 3 = 0: the first member.
        assert_eq!(b.select(now, &sticky(b"key-a")), Ok(1));
        // 264808765 mod 3 = 1 and 1170317017 mod 3 = 1: the second.
        assert_eq!(b.select(now, &sticky(b"key-b")), Ok(2));
        assert_eq!(b.select(now, &sticky(b"user/42")), Ok(2));
    }
    // Failing over from member 1: 264808764 mod 2 = 0 among [2, 3].
    let failover = Selector::new(Policy::Sticky).key(b"key-a").exclude(&[1]);
    assert_eq!(b.select(now, &failover), Ok(2));
    // No key, or an empty one: round-robin.
    assert_eq!(picks(&mut b, now, Policy::Sticky, 4), [1, 2, 3, 1]);
    assert_eq!(b.select(now, &sticky(b"")), Ok(2));
}

#[test]
fn p2c_steers_away_from_a_slow_member_and_returns_after_the_decay() {
    let mut now = Instant::now();
    let mut b = with_members(4);
    let slow = 3;
    let run = |b: &mut Balancer<u64>, now: &mut Instant, steps: u32, slow_ms: u64| {
        let mut to_slow = 0u32;
        for _ in 0..steps {
            let m = pick(b, *now, Policy::P2c);
            let latency = if m == slow { ms(slow_ms) } else { ms(5) };
            call(b, *now, m, Outcome::Answered { latency });
            to_slow += u32::from(m == slow);
            *now += ms(10);
        }
        f64::from(to_slow) / f64::from(steps)
    };

    // 20 s of calls every 10 ms; the others take 5 ms and member 3 100 ms:
    // it gets a call or two at first (its estimate starts at 1 ms), then
    // none while its estimate decays.
    let share = run(&mut b, &mut now, 2_000, 100);
    assert!(share > 0.0 && share < 0.01, "slow member's share {share}");
    let peak = b.stats(now)[2].peak_ewma;
    assert!(peak > ms(10), "slow member's estimate {peak:?}");

    // It is fast again: once its estimate decays it is tried, and over the
    // following minutes it is back to a fair share.
    let _ = run(&mut b, &mut now, 20_000, 5);
    let share = run(&mut b, &mut now, 10_000, 5);
    assert!(
        (0.18..0.32).contains(&share),
        "recovered member's share {share}"
    );
}

#[test]
fn p2c_tries_members_faster_than_its_first_guess() {
    let mut now = Instant::now();
    let mut b = with_members(2);
    // Members answer in 0.3 ms, below the 1 ms guess an unsampled one has.
    // Returns each member's calls in the window.
    let run = |b: &mut Balancer<u64>, now: &mut Instant, steps: u32| {
        let mut calls = [0u32; 4];
        for _ in 0..steps {
            let m = pick(b, *now, Policy::P2c);
            let latency = Duration::from_micros(300);
            call(b, *now, m, Outcome::Answered { latency });
            calls[m as usize] += 1;
            *now += ms(10);
        }
        calls
    };
    // An unsampled guess decays from its first comparison, as tower's does
    // from the endpoint's creation. Before, it never decayed: the member
    // that answered first took every call and the other was never tried.
    let calls = run(&mut b, &mut now, 6_000);
    assert!(calls[1] > 0 && calls[2] > 0, "calls per member {calls:?}");
    // A member added later is tried too, and takes its share once its
    // estimate has come down to the others' (about 10 s per factor e).
    b.add(3, MemberInfo::new());
    let _ = run(&mut b, &mut now, 9_000);
    let calls = run(&mut b, &mut now, 3_000);
    for m in 1..=3 {
        let share = f64::from(calls[m]) / 3_000.0;
        assert!((0.2..0.45).contains(&share), "calls per member {calls:?}");
    }
}

#[test]
fn p2c_prefers_the_member_with_fewer_calls_in_flight() {
    let now = Instant::now();
    let mut b = with_members(2);
    for _ in 0..3 {
        assert!(b.start(&1));
    }
    // Same estimate (the initial 1 ms): cost 1 × 4 against 1 × 1.
    for _ in 0..20 {
        assert_eq!(pick(&mut b, now, Policy::P2c), 2);
    }
}

#[test]
fn a_failed_member_cools_down_for_two_seconds() {
    let t0 = Instant::now();
    let mut b = with_members(2);
    call(&mut b, t0, 1, Outcome::Failed { latency: ms(3) });

    for at in [0, 1, 1_000, 1_999] {
        assert_eq!(picks(&mut b, t0 + ms(at), Policy::RoundRobin, 3), [2, 2, 2]);
        let stats = b.stats(t0 + ms(at));
        assert_eq!(stats[0].cooling_until, Some(t0 + ms(2_000)));
        assert_eq!(stats[0].failures, 1);
    }
    let t2 = t0 + ms(2_000);
    assert_eq!(b.stats(t2)[0].cooling_until, None);
    assert_eq!(picks(&mut b, t2, Policy::RoundRobin, 2), [1, 2]);
}

#[test]
fn no_eligible_member_means_no_peers_at_once() {
    let t0 = Instant::now();
    let mut empty: Balancer<u64> = Balancer::new(BalancerConfig::default());
    assert_eq!(empty.select(t0, &Selector::new(Policy::P2c)), Err(NoPeers));
    assert_eq!(empty.poll_event(), Some(PoolEvent::NoPeer));

    // Every member cooling down: no peers, as neonplex, not a member that
    // just failed; the first cooldown to end brings the pool back.
    let mut b = with_members(2);
    call(&mut b, t0, 1, Outcome::Failed { latency: ms(1) });
    call(&mut b, t0 + ms(500), 2, Outcome::Failed { latency: ms(1) });
    for policy in [
        Policy::RoundRobin,
        Policy::Weighted {
            prefer_local: false,
        },
        Policy::Sticky,
        Policy::P2c,
    ] {
        assert_eq!(
            b.select(t0 + ms(1_000), &Selector::new(policy)),
            Err(NoPeers)
        );
    }
    assert_eq!(b.totals().no_peer, 4);
    assert_eq!(b.select(t0 + ms(2_000), &Selector::new(Policy::P2c)), Ok(1));

    // A call that already tried everyone ends without a NoPeer event.
    while b.poll_event().is_some() {}
    let tried = [1, 2];
    let exhausted = Selector::new(Policy::RoundRobin).exclude(&tried);
    assert_eq!(b.select(t0 + ms(5_000), &exhausted), Err(NoPeers));
    assert_eq!(b.poll_event(), None);
    assert_eq!(b.totals().no_peer, 4);
}

#[test]
fn calls_in_flight_are_counted_exactly() {
    let now = Instant::now();
    let mut b = with_members(2);
    assert!(b.start(&1));
    assert!(b.start(&1));
    assert!(b.start(&2));
    assert_eq!(b.stats(now)[0].in_flight, 2);

    // A cancelled call leaves no mark but the count.
    assert!(b.finish(now, &1, Outcome::Cancelled));
    assert!(b.finish(now, &1, Outcome::Answered { latency: ms(4) }));
    let one = &b.stats(now)[0];
    assert_eq!(
        (one.in_flight, one.calls, one.cancelled, one.failures),
        (0, 1, 1, 0)
    );
    assert_eq!(one.cooling_until, None);

    // A call on a member removed meanwhile still counts in the totals.
    assert!(b.remove(&2));
    assert!(!b.finish(now, &2, Outcome::Failed { latency: ms(1) }));
    assert!(!b.start(&2));
    let totals = b.totals();
    assert_eq!((totals.calls, totals.cancelled, totals.failures), (1, 1, 1));
}

#[test]
fn latency_estimates_follow_their_formulas() {
    let t0 = Instant::now();
    let mut b = with_members(1);
    // EWMA α 0.2 from 1 ms: 1 × 0.8 + 11 × 0.2 = 3 ms.
    call(&mut b, t0, 1, Outcome::Answered { latency: ms(11) });
    let s = &b.stats(t0)[0];
    assert_eq!(s.latency_ewma, ms(3));
    // The peak estimate jumps to a sample above it.
    assert_eq!(s.peak_ewma, ms(11));
    // Then decays by exp(−elapsed / 10 s) while no sample comes.
    let later = b.stats(t0 + Duration::from_secs(10))[0].peak_ewma;
    let want = 11.0 * (-1.0f64).exp();
    assert!(
        (later.as_secs_f64() * 1000.0 - want).abs() < 1e-6,
        "{later:?}"
    );
    // A lower sample pulls it with weight 1 − w: after 10 s, w = e^−1.
    call(
        &mut b,
        t0 + Duration::from_secs(10),
        1,
        Outcome::Answered { latency: ms(1) },
    );
    let w = (-1.0f64).exp();
    let want = 11.0 * w + 1.0 * (1.0 - w);
    let got = b.stats(t0 + Duration::from_secs(10))[0].peak_ewma;
    assert!((got.as_secs_f64() * 1000.0 - want).abs() < 1e-6, "{got:?}");
}

#[test]
fn events_report_membership_and_calls_and_drop_the_oldest_when_full() {
    let now = Instant::now();
    let mut b = Balancer::new(BalancerConfig {
        event_capacity: 3,
        ..BalancerConfig::default()
    });
    b.add(1u64, MemberInfo::new());
    b.add(2, MemberInfo::new());
    call(&mut b, now, 1, Outcome::Answered { latency: ms(2) });
    call(&mut b, now, 2, Outcome::Failed { latency: ms(7) });
    call(&mut b, now, 1, Outcome::Cancelled);
    assert_eq!(b.totals().events_dropped, 1);
    assert_eq!(b.poll_event(), Some(PoolEvent::PeerAdded { member: 2 }));
    assert_eq!(
        b.poll_event(),
        Some(PoolEvent::CallComplete {
            member: 1,
            latency: ms(2)
        })
    );
    assert_eq!(
        b.poll_event(),
        Some(PoolEvent::CallError {
            member: 2,
            latency: ms(7),
            failures: 1,
            cooling_until: Some(now + ms(2_000)),
        })
    );
    assert_eq!(b.poll_event(), None);
    b.remove(&1);
    assert_eq!(b.poll_event(), Some(PoolEvent::PeerRemoved { member: 1 }));
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let now = Instant::now();
    let choices = |seed: u64| {
        let mut b = Balancer::new(BalancerConfig {
            seed,
            ..BalancerConfig::default()
        });
        for m in 1..=5u64 {
            b.add(m, MemberInfo::new());
        }
        picks(&mut b, now, Policy::P2c, 50)
    };
    assert_eq!(choices(7), choices(7));
    assert_ne!(choices(7), choices(8));
}

mod model {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use crate::pool::{Balancer, BalancerConfig, MemberInfo, Outcome, Policy, Selector};

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        Remove(u8),
        Call {
            policy: u8,
            key: Vec<u8>,
            exclude: Option<u8>,
        },
        Finish {
            member: u8,
            outcome: u8,
            latency_ms: u16,
        },
        Wait(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6u8).prop_map(Op::Add),
            (0..6u8).prop_map(Op::Remove),
            (
                0..4u8,
                proptest::collection::vec(any::<u8>(), 0..4),
                proptest::option::of(0..6u8)
            )
                .prop_map(|(policy, key, exclude)| Op::Call {
                    policy,
                    key,
                    exclude
                }),
            (0..6u8, 0..3u8, any::<u16>()).prop_map(|(member, outcome, latency_ms)| Op::Finish {
                member,
                outcome,
                latency_ms
            }),
            (0..3_000u16).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Against a model of membership, cooldowns and calls in flight:
        /// a selection only returns a member that is present, not cooling
        /// down and not excluded, and fails only when there is none; the
        /// in-flight counts are exact.
        #[test]
        fn selections_and_counts_match_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let cooldown = Duration::from_secs(2);
            let mut b = Balancer::new(BalancerConfig::default());
            let mut now = Instant::now();
            // member → (cooling until, calls in flight)
            let mut model: Vec<(u8, Option<Instant>, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Add(m) => {
                        let new = !model.iter().any(|e| e.0 == m);
                        prop_assert_eq!(b.add(m, MemberInfo::new()), new);
                        if new {
                            model.push((m, None, 0));
                        }
                    }
                    Op::Remove(m) => {
                        let had = model.iter().any(|e| e.0 == m);
                        prop_assert_eq!(b.remove(&m), had);
                        model.retain(|e| e.0 != m);
                    }
                    Op::Call { policy, key, exclude } => {
                        let policy = [
                            Policy::RoundRobin,
                            Policy::Weighted { prefer_local: true },
                            Policy::Sticky,
                            Policy::P2c,
                        ][usize::from(policy)];
                        let excluded: Vec<u8> = exclude.into_iter().collect();
                        let selector = Selector::new(policy).key(&key).exclude(&excluded);
                        let eligible: Vec<u8> = model
                            .iter()
                            .filter(|e| e.1.is_none_or(|t| now >= t) && !excluded.contains(&e.0))
                            .map(|e| e.0)
                            .collect();
                        match b.select(now, &selector) {
                            Ok(m) => {
                                prop_assert!(eligible.contains(&m), "{} not in {:?}", m, eligible);
                                prop_assert!(b.start(&m));
                                model.iter_mut().find(|e| e.0 == m).unwrap().2 += 1;
                            }
                            Err(_) => prop_assert!(eligible.is_empty()),
                        }
                    }
                    Op::Finish { member, outcome, latency_ms } => {
                        let Some(entry) = model.iter_mut().find(|e| e.0 == member && e.2 > 0) else {
                            continue;
                        };
                        let latency = Duration::from_millis(u64::from(latency_ms));
                        let outcome = match outcome {
                            0 => Outcome::Answered { latency },
                            1 => {
                                entry.1 = Some(now + cooldown);
                                Outcome::Failed { latency }
                            }
                            _ => Outcome::Cancelled,
                        };
                        entry.2 -= 1;
                        prop_assert!(b.finish(now, &member, outcome));
                    }
                    Op::Wait(ms) => now += Duration::from_millis(u64::from(ms)),
                }
                let stats = b.stats(now);
                prop_assert_eq!(stats.len(), model.len());
                for (s, e) in stats.iter().zip(&model) {
                    prop_assert_eq!(s.member, e.0);
                    prop_assert_eq!(s.in_flight, e.2);
                    prop_assert_eq!(s.cooling_until, e.1.filter(|&t| now < t));
                }
            }
        }
    }
}
