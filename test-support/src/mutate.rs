//! Byte-level mutations of valid files for the fuzz harnesses (proptest strategies; shrinking
//! reduces a failing list of mutations to the few that matter). `DLVP_FUZZ_CASES` sets the
//! number of cases per target.

use proptest::prelude::*;

/// Cases per fuzz target: `DLVP_FUZZ_CASES`, else `default` (sized so CI spends a few minutes
/// on all targets together).
pub fn cases(default: u32) -> u32 {
    std::env::var("DLVP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where a mutation lands: near the start (headers), near the end (trailers such as ONNX
/// metadata), or anywhere.
#[derive(Debug, Clone, Copy)]
pub enum At {
    Start(usize),
    End(usize),
    Anywhere(usize),
}

impl At {
    fn index(self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        match self {
            At::Start(i) => i % len,
            At::End(i) => len - 1 - i % len,
            At::Anywhere(i) => i % len,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(At, u8),
    Set(At, u8),
    /// A little-endian and a big-endian integer that parsers take for lengths and offsets.
    Word(At, u64),
    Insert(At, Vec<u8>),
    Remove(At, usize),
    Truncate(At),
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        (0usize..512).prop_map(At::Start),
        (0usize..512).prop_map(At::End),
        any::<usize>().prop_map(At::Anywhere),
    ]
}

fn interesting_word() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(0x7f),
        Just(0xff),
        Just(0xffff),
        Just(0x7fff_ffff),
        Just(0xffff_ffff),
        Just(u64::MAX),
        Just(u64::MAX / 2),
        any::<u64>(),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (at(), 0u8..8).prop_map(|(a, bit)| Mutation::Flip(a, bit)),
        (at(), any::<u8>()).prop_map(|(a, b)| Mutation::Set(a, b)),
        (at(), interesting_word()).prop_map(|(a, w)| Mutation::Word(a, w)),
        (at(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (at(), 1usize..64).prop_map(|(a, n)| Mutation::Remove(a, n)),
        at().prop_map(Mutation::Truncate),
    ]
}

/// One to eight mutations, applied in order.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..8)
}

pub fn apply(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for m in mutations {
        let len = out.len();
        match m {
            Mutation::Flip(a, bit) if len > 0 => out[a.index(len)] ^= 1 << bit,
            Mutation::Set(a, b) if len > 0 => out[a.index(len)] = *b,
            Mutation::Word(a, w) if len > 0 => {
                let i = a.index(len);
                let bytes = if w & 1 == 0 {
                    w.to_le_bytes()
                } else {
                    w.to_be_bytes()
                };
                for (k, b) in bytes.iter().enumerate().take(len - i) {
                    out[i + k] = *b;
                }
            }
            Mutation::Insert(a, b) => {
                let i = a.index(len + 1).min(len);
                out.splice(i..i, b.iter().copied());
            }
            Mutation::Remove(a, n) if len > 0 => {
                let i = a.index(len);
                out.drain(i..(i + n).min(len));
            }
            Mutation::Truncate(a) => out.truncate(a.index(len + 1)),
            _ => {}
        }
    }
    out
}
