//! Model-based test: random appends, batches, gets, cursors and reopens
//! against a `VecDeque` model of the ring, including exact retention gaps.

use std::collections::VecDeque;

use plex_store::{Error, ErrorKind, Options, Pool, Seq, Start};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { tags: Vec<String>, len: usize },
    Batch { lens: Vec<usize> },
    Get { back: u64 },
    Read { count: usize },
    Last { n: u64 },
    Reopen,
}

/// A message length: mostly small, sometimes up to the pool's limit.
fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..64,
        3 => 64usize..600,
        1 => 600usize..=MAX_DATA,
        1 => Just(MAX_DATA),
    ]
}

const RING: u64 = 4096;
/// The largest data with no tags: the whole ring minus the frame header.
const MAX_DATA: usize = RING as usize - 32;

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec("[a-z]{0,6}", 0..3), len_strategy())
            .prop_map(|(tags, len)| Op::Append { tags, len }),
        2 => prop::collection::vec(0usize..300, 0..5).prop_map(|lens| Op::Batch { lens }),
        4 => (0u64..40).prop_map(|back| Op::Get { back }),
        3 => (1usize..12).prop_map(|count| Op::Read { count }),
        1 => (0u64..20).prop_map(|n| Op::Last { n }),
        1 => Just(Op::Reopen),
    ]
}

/// The reference: live frames with their ring placement.
struct Model {
    ring: u64,
    head: u64,
    newest: u64,
    live: VecDeque<Live>,
}

struct Live {
    seq: u64,
    start: u64,
    len: u64,
    tags: Vec<String>,
    data: Vec<u8>,
}

impl Model {
    fn oldest(&self) -> u64 {
        self.live.front().map_or(self.newest + 1, |l| l.seq)
    }

    fn append(&mut self, tags: &[String], data: Vec<u8>) -> u64 {
        let raw = 32 + tags.iter().map(|t| 2 + t.len() as u64).sum::<u64>() + data.len() as u64;
        let len = raw.next_multiple_of(8);
        let pos = loop {
            let Some(front) = self.live.front() else {
                break if self.head + len <= self.ring {
                    self.head
                } else {
                    0
                };
            };
            let wraps = self.head + len > self.ring;
            let needed = if wraps {
                self.ring - self.head + len
            } else {
                len
            };
            let tail = front.start;
            let free = match tail.cmp(&self.head) {
                std::cmp::Ordering::Greater => tail - self.head,
                std::cmp::Ordering::Less => self.ring - self.head + tail,
                std::cmp::Ordering::Equal => 0,
            };
            if free >= needed {
                break if wraps { 0 } else { self.head };
            }
            self.live.pop_front();
        };
        self.newest += 1;
        self.head = pos + len;
        self.live.push_back(Live {
            seq: self.newest,
            start: pos,
            len,
            tags: tags.to_vec(),
            data,
        });
        self.newest
    }

    fn find(&self, seq: u64) -> Option<&Live> {
        let first = self.live.front()?.seq;
        self.live
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn check_message(model: &Model, msg: &plex_store::Message) {
    let want = model
        .find(msg.seq.0)
        .expect("pool returned a seq the model evicted");
    assert_eq!(msg.tags, want.tags, "tags of {}", msg.seq);
    assert_eq!(msg.data, want.data, "data of {}", msg.seq);
    let _ = want.len;
}

fn run(ops: Vec<Op>, slots: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pool");
    let size = 4096 + 4096 + RING;
    let mut pool = Pool::create(&path, size, Options::new().index_slots(slots)).unwrap();
    assert_eq!(pool.info().ring_len, RING);
    let mut model = Model {
        ring: RING,
        head: 0,
        newest: 0,
        live: VecDeque::new(),
    };
    let mut cursor_next = 1u64;
    for op in ops {
        match op {
            Op::Append { tags, len } => {
                let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
                let tag_bytes: usize = tags.iter().map(|t| 2 + t.len()).sum();
                let data = payload(model.newest + 1, len);
                let result = pool.append(&refs, &data);
                if 32 + tag_bytes + len > RING as usize {
                    assert_eq!(result.unwrap_err().kind(), ErrorKind::Usage);
                    continue;
                }
                let expect = model.append(&tags, data);
                assert_eq!(result.unwrap(), Seq(expect));
            }
            Op::Batch { lens } => {
                let datas: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| payload(model.newest + 1 + i as u64, l))
                    .collect();
                let batch: Vec<(&[&str], &[u8])> =
                    datas.iter().map(|d| (&[][..], &d[..])).collect();
                let range = pool.append_batch(&batch).unwrap();
                let first = model.newest + 1;
                for d in datas {
                    model.append(&[], d);
                }
                assert_eq!(range, Seq(first)..Seq(model.newest + 1));
            }
            Op::Get { back } => {
                let seq = (model.newest + 3).saturating_sub(back);
                match (pool.get(Seq(seq)), model.find(seq)) {
                    (Ok(msg), Some(_)) => check_message(&model, &msg),
                    (
                        Err(Error::SeqNotFound {
                            seq: s,
                            oldest,
                            newest,
                        }),
                        None,
                    ) => {
                        assert_eq!(s, Seq(seq));
                        assert_eq!((oldest, newest), (Seq(model.oldest()), Seq(model.newest)));
                    }
                    (got, want) => {
                        panic!("get({seq}): pool {got:?}, model has it: {}", want.is_some())
                    }
                }
            }
            Op::Read { count } => {
                let mut cursor = pool.cursor(Start::Seq(Seq(cursor_next)));
                for _ in 0..count {
                    let expect_seq = cursor.next_seq().0;
                    match cursor.try_next() {
                        Ok(Some(msg)) => {
                            assert_eq!(msg.seq.0, expect_seq);
                            check_message(&model, &msg);
                        }
                        Ok(None) => {
                            assert_eq!(expect_seq, model.newest + 1);
                            break;
                        }
                        Err(Error::RetentionGap { lost }) => {
                            assert_eq!(lost, Seq(expect_seq)..Seq(model.oldest()));
                            assert_eq!(cursor.next_seq(), Seq(model.oldest()));
                        }
                        Err(e) => panic!("cursor: {e}"),
                    }
                }
                cursor_next = cursor.next_seq().0;
            }
            Op::Last { n } => {
                let mut cursor = pool.cursor(Start::Last(n));
                let held = model.live.len() as u64;
                let mut got = 0;
                while let Some(msg) = cursor.try_next().unwrap() {
                    check_message(&model, &msg);
                    got += 1;
                }
                assert_eq!(got, n.min(held));
            }
            Op::Reopen => {
                drop(pool);
                pool = Pool::open(&path).unwrap();
                let report = plex_store::check_bytes(&std::fs::read(&path).unwrap()).unwrap();
                assert!(!report.needs_repair);
                assert_eq!(report.messages, model.live.len() as u64);
            }
        }
        let info = pool.info();
        assert_eq!(
            (info.oldest, info.newest),
            (Seq(model.oldest()), Seq(model.newest))
        );
        assert_eq!(info.head, model.head);
    }
    // Everything the model holds is readable, in order, from the oldest.
    let mut cursor = pool.cursor(Start::Oldest);
    for live in &model.live {
        let msg = cursor.try_next().unwrap().expect("model message missing");
        assert_eq!(msg.seq, Seq(live.seq));
        assert_eq!(msg.data, live.data);
    }
    assert!(cursor.try_next().unwrap().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pool_matches_model(
        ops in prop::collection::vec(op_strategy(), 1..120),
        // 240 fine slots and the 16 coarse ones fill the one index page.
        slots in prop_oneof![Just(1u64), Just(7), Just(240)],
    ) {
        run(ops, slots);
    }
}

#[test]
fn max_size_message_fills_the_ring() {
    run(
        vec![
            Op::Append {
                tags: vec![],
                len: 100,
            },
            Op::Append {
                tags: vec![],
                len: MAX_DATA,
            },
            Op::Read { count: 3 },
            Op::Append {
                tags: vec!["x".into()],
                len: MAX_DATA,
            },
            Op::Append {
                tags: vec![],
                len: 10,
            },
            Op::Read { count: 3 },
            Op::Reopen,
            Op::Get { back: 3 },
        ],
        7,
    );
}
