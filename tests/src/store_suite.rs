//! The behaviour every store port promises, checked through the
//! [`StorePort`] trait alone, so the same suite runs on a backend in
//! process and on a port reached over the network.
//!
//! Each check starts from a fresh, empty store and panics on the first
//! difference. [`conformance`] is for key-value ports; [`append_only`]
//! for ports whose only writes are appends (pools).

use std::collections::BTreeMap;

use bytes::Bytes;
use plex_peer::store::{parse_append_key, Entry};
use plex_peer::{Code, Range, StorePort};

/// More entries than any backend reads per batch.
const MANY: usize = 300;
/// A value larger than a typical frame or page.
const LARGE: usize = 200 * 1024;

/// Checks every behaviour of a key-value store port on `port`, which must
/// be empty: gets, puts, overwrites, deletes, empty values, appends, scans
/// of every shape in both directions, scans longer than a batch, an
/// abandoned scan, a large value and binary keys.
pub async fn conformance<P: StorePort + ?Sized>(port: &P) {
    assert!(all(port, Range::all()).await.is_empty(), "store not empty");
    assert_eq!(get(port, "missing").await, None);

    put(port, "a", "1").await;
    assert_eq!(get(port, "a").await.as_deref(), Some(&b"1"[..]));
    put(port, "a", "2").await;
    assert_eq!(get(port, "a").await.as_deref(), Some(&b"2"[..]));
    del(port, "a").await;
    assert_eq!(get(port, "a").await, None);
    del(port, "a").await;
    del(port, "never-written").await;

    put(port, "empty", "").await;
    assert_eq!(get(port, "empty").await, Some(Bytes::new()), "empty value");
    del(port, "empty").await;

    let binary = Bytes::from_static(b"\x00k\xff\x00\xff");
    put(port, binary.clone(), "bin").await;
    assert_eq!(
        get(port, binary.clone()).await.as_deref(),
        Some(&b"bin"[..])
    );
    assert_eq!(get(port, Bytes::from_static(b"\x00k\xff\x00")).await, None);
    del(port, binary).await;

    appends_in_order(port).await;
    for key in all(port, Range::all()).await {
        del(port, key.key).await;
    }

    let mut model = BTreeMap::new();
    for key in SHAPED_KEYS {
        let value = Bytes::from(format!("v{}", key.escape_ascii()));
        put(port, Bytes::from_static(key), value.clone()).await;
        model.insert(Bytes::from_static(key), value);
    }
    for range in shaped_ranges() {
        check_range(port, &model, range).await;
    }
    for key in SHAPED_KEYS {
        del(port, Bytes::from_static(key)).await;
    }
    assert!(all(port, Range::all()).await.is_empty());

    let mut many = BTreeMap::new();
    for i in 0..MANY {
        let (key, value) = (format!("many/{i:04}"), format!("value {i}"));
        put(port, key.clone(), value.clone()).await;
        many.insert(Bytes::from(key), Bytes::from(value));
    }
    put(port, "many0", "after the prefix").await;
    put(port, "man", "before the prefix").await;
    longer_than_a_batch(port, &many, Range::prefix("many/")).await;

    let large = Bytes::from((0..LARGE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    put(port, "large", large.clone()).await;
    assert_eq!(get(port, "large").await, Some(large.clone()));
    let scanned = all(port, Range::all().gte("large").lte("large")).await;
    assert_eq!(scanned, [entry("large", large)]);
}

/// Checks the behaviour of an append-only port (a pool) on `port`, which
/// must be empty: puts and deletes fail with [`Code::NotAvailable`],
/// appends get increasing keys and read back, and scans of every shape
/// over the appended keys, in both directions, longer than a batch and
/// abandoned halfway.
pub async fn append_only<P: StorePort + ?Sized>(port: &P) {
    assert!(all(port, Range::all()).await.is_empty(), "store not empty");
    assert_eq!(get(port, "log/00000000000000000001").await, None);
    assert_eq!(get(port, "not a log key").await, None);
    for result in [
        port.put("k".into(), "v".into(), Bytes::new()).await,
        port.del("k".into(), Bytes::new()).await,
    ] {
        let err = result.expect_err("an append-only port accepted a put or del");
        assert_eq!(err.code(), Code::NotAvailable, "{err}");
    }

    appends_in_order(port).await;
    let large = Bytes::from((0..LARGE).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let large_key = append(port, large.clone()).await;
    assert_eq!(get(port, large_key).await, Some(large));

    for i in 0..MANY {
        append(port, format!("value {i}")).await;
    }
    let model: BTreeMap<Bytes, Bytes> = all(port, Range::all())
        .await
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(model.len(), MANY + 4);
    let keys: Vec<Bytes> = model.keys().cloned().collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    longer_than_a_batch(port, &model, Range::all()).await;

    let (k5, k10, k200) = (keys[4].clone(), keys[9].clone(), keys[199].clone());
    let mut between = k5.to_vec();
    between.push(0);
    let common = common_prefix(&keys[9], &keys[10]);
    for range in [
        Range::all(),
        Range::prefix(common_prefix(&keys[0], &keys[MANY])),
        Range::prefix(common),
        Range::prefix("no such prefix"),
        Range::all().gte(k5.clone()),
        Range::all().gt(k5.clone()),
        Range::all().lte(k10.clone()),
        Range::all().lt(k10.clone()),
        Range::all().gte(k5.clone()).lt(k10.clone()),
        Range::all().gt(k5.clone()).lte(k200.clone()),
        Range::all().gt(Bytes::from(between)).lt(k10.clone()),
        Range::all().gte(k10.clone()).lte(k10.clone()),
        Range::all().gte(k10.clone()).lt(k5.clone()),
        Range::all().gt(k5.clone()).lte(k5.clone()),
        Range::all().gt(keys[keys.len() - 1].clone()),
        Range::all().lt(keys[0].clone()),
        Range::all().gt("").lte(Bytes::from_static(b"\xff\xff")),
    ] {
        check_range(port, &model, range).await;
    }
    assert_eq!(model.get(&k200), get(port, k200.clone()).await.as_ref());
}

/// Three appends: keys that increase and sort in append order (the
/// shared append-key format), values that read back, an empty one
/// included, and a scan between them that returns them in order.
async fn appends_in_order<P: StorePort + ?Sized>(port: &P) {
    let values = ["one", "two", ""];
    let mut keys = Vec::new();
    for value in values {
        keys.push(append(port, value).await);
    }
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    let seqs: Vec<u64> = keys
        .iter()
        .map(|k| parse_append_key(k).expect("not an append key"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (key, value) in keys.iter().zip(values) {
        assert_eq!(
            get(port, key.clone()).await.as_deref(),
            Some(value.as_bytes())
        );
    }
    let range = Range::all().gte(keys[0].clone()).lte(keys[2].clone());
    let expected: Vec<Entry> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| entry(k.clone(), v))
        .collect();
    assert_eq!(all(port, range.clone()).await, expected);
    let reversed: Vec<Entry> = expected.into_iter().rev().collect();
    assert_eq!(all(port, range.reverse()).await, reversed);
}

/// Scans `range` (over more than one batch of `model`) both ways, then
/// drops a scan halfway and checks that the next scan is complete.
async fn longer_than_a_batch<P: StorePort + ?Sized>(
    port: &P,
    model: &BTreeMap<Bytes, Bytes>,
    range: Range,
) {
    let expected = expected(model, &range);
    assert!(expected.len() >= MANY, "the range holds {}", expected.len());
    check_range(port, model, range.clone()).await;

    let mut half = port.scan(range.clone(), Bytes::new()).await.expect("scan");
    for want in &expected[..expected.len() / 2] {
        let got = half.next().await.expect("scan ended early").expect("scan");
        assert_eq!(&got, want);
    }
    drop(half);
    assert_eq!(all(port, range).await, expected);
}

/// Keys with 0x00 and 0xff bytes, prefixes of each other, and a prefix
/// `p/` with neighbours on both sides.
const SHAPED_KEYS: [&[u8]; 14] = [
    b"\x00",
    b"\x00\x00",
    b"a",
    b"a\x00",
    b"a\xff",
    b"a\xff\xff",
    b"b",
    b"p.",
    b"p/1",
    b"p/2",
    b"p/3",
    b"p0",
    b"\xff",
    b"\xff\xff",
];

/// Every shape of range over [`SHAPED_KEYS`]: prefixes, each bound alone,
/// combinations, single keys, bounds between keys and crossed bounds.
fn shaped_ranges() -> Vec<Range> {
    let ff = Bytes::from_static(b"\xff");
    vec![
        Range::all(),
        Range::prefix("p/"),
        Range::prefix("a"),
        Range::prefix(Bytes::from_static(b"a\xff")),
        Range::prefix(ff.clone()),
        Range::prefix(Bytes::from_static(b"\x00")),
        Range::prefix("zz"),
        Range::all().gte("a"),
        Range::all().gt("a"),
        Range::all().lte("b"),
        Range::all().lt("b"),
        Range::all().gte("a").lt("b"),
        Range::all().gt("a").lte("b"),
        Range::all().gt(Bytes::from_static(b"a\xff")).lt("p0"),
        Range::all().gte("p/2").lte("p/2"),
        Range::all().gt("a0").lt("p/25"),
        Range::all().gte(ff.clone()),
        Range::all().lt(Bytes::from_static(b"\x00")),
        Range::all().lte(Bytes::from_static(b"\x00")),
        Range::prefix("p/").gt("p/1"),
        Range::prefix("p/").lt("p/3"),
        Range::prefix("p/").gte("a").lte("z"),
        Range::prefix("p").gte("p/").lt("p0"),
        Range::all().gte("b").lt("a"),
        Range::all().gt("a").lte("a"),
        Range::all().gt("a").lt("a"),
        Range::prefix("b").lt("a"),
        Range::prefix("a").gt("b"),
        Range::all().gte("a").lte("a"),
    ]
}

/// Scans `range` forwards and backwards and compares with `model`.
async fn check_range<P: StorePort + ?Sized>(
    port: &P,
    model: &BTreeMap<Bytes, Bytes>,
    range: Range,
) {
    let forward = Range {
        reverse: false,
        ..range.clone()
    };
    let want = expected(model, &forward);
    assert_eq!(all(port, forward.clone()).await, want, "{forward:?}");
    let backward = forward.reverse();
    let want: Vec<Entry> = want.into_iter().rev().collect();
    assert_eq!(all(port, backward.clone()).await, want, "{backward:?}");
}

/// The entries of `model` in `range`, in the range's order.
fn expected(model: &BTreeMap<Bytes, Bytes>, range: &Range) -> Vec<Entry> {
    let mut entries: Vec<Entry> = model
        .iter()
        .filter(|(k, _)| range.contains(k))
        .map(|(k, v)| entry(k.clone(), v.clone()))
        .collect();
    if range.reverse {
        entries.reverse();
    }
    entries
}

fn common_prefix(a: &[u8], b: &[u8]) -> Bytes {
    let len = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    Bytes::copy_from_slice(&a[..len])
}

fn entry(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Entry {
    Entry {
        key: key.into(),
        value: value.into(),
    }
}

async fn all<P: StorePort + ?Sized>(port: &P, range: Range) -> Vec<Entry> {
    let entries = port.scan(range.clone(), Bytes::new()).await;
    let entries = entries.unwrap_or_else(|e| panic!("scan {range:?}: {e}"));
    entries
        .collect()
        .await
        .unwrap_or_else(|e| panic!("scan {range:?}: {e}"))
}

async fn get<P: StorePort + ?Sized>(port: &P, key: impl Into<Bytes>) -> Option<Bytes> {
    let key = key.into();
    let value = port.get(key.clone(), Bytes::new()).await;
    value.unwrap_or_else(|e| panic!("get {key:?}: {e}"))
}

async fn put<P: StorePort + ?Sized>(port: &P, key: impl Into<Bytes>, value: impl Into<Bytes>) {
    let key = key.into();
    let done = port.put(key.clone(), value.into(), Bytes::new()).await;
    done.unwrap_or_else(|e| panic!("put {key:?}: {e}"));
}

async fn del<P: StorePort + ?Sized>(port: &P, key: impl Into<Bytes>) {
    let key = key.into();
    let done = port.del(key.clone(), Bytes::new()).await;
    done.unwrap_or_else(|e| panic!("del {key:?}: {e}"));
}

async fn append<P: StorePort + ?Sized>(port: &P, value: impl Into<Bytes>) -> Bytes {
    let key = port.append(value.into(), Bytes::new()).await;
    key.unwrap_or_else(|e| panic!("append: {e}"))
}
