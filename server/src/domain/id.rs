//! Run ids: what users type and see, and the key a run is stored under.

use std::{fmt, str::FromStr};

use crate::error::{Result, StrataError};

/// A run's id. Its key (8 bytes, big-endian, in the store) is the creation time in unix
/// milliseconds, shifted left 16, plus a sequence number, with the top bit set: keys sort by
/// creation time, and every id made since short ids (see below) sorts after every older one.
///
/// Shown to people as 13 characters of Crockford base32 (`0-9a-z` without `i l o u`) of the key
/// *scrambled* by an invertible mix, so ids made a millisecond apart share no prefix and 4–5
/// characters name one run among thousands (time-ordered ids shared their first 10–12 digits).
/// Ids from before this change (top bit clear) are still shown, and found, as their 16 hex digits.
///
/// Ids are unique across daemons: the low [`RUN_ID_TAG_BITS`] bits of a new key are the daemon's
/// [`RunIdTag`] (random, drawn once per data dir), the bits between them and the time a sequence
/// within the millisecond. Two daemons starting runs in the same millisecond make different ids
/// unless they drew the same tag (1 in 4,096 per pair; `strata info` warns about it). Keys made
/// before tags keep their meaning: the time is still `key >> 16`, so they stay valid and sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// The top bit of the key of every run with a short id.
pub(crate) const SHORT_ID_FLAG: u64 = 1 << 63;
/// Low bits of a run key that name the daemon that made it.
pub const RUN_ID_TAG_BITS: u32 = 12;
const TIME_SHIFT: u32 = 16;

/// A daemon's part of the run ids it makes: `0..2^RUN_ID_TAG_BITS`, drawn at random when its
/// store is created and kept in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunIdTag(u16);

impl RunIdTag {
    /// The tag of `value`'s low [`RUN_ID_TAG_BITS`] bits (any random number will do).
    pub fn from_random(value: u64) -> RunIdTag {
        RunIdTag((value & ((1 << RUN_ID_TAG_BITS) - 1)) as u16)
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
pub(crate) const SHORT_ID_CHARS: usize = 13;

/// splitmix64's finalizer: a bijection of u64 that spreads every input bit over all outputs.
pub(crate) fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inverse of `x ^ (x >> shift)`.
fn unshift_xor(y: u64, shift: u32) -> u64 {
    let mut x = y;
    let mut step = shift;
    while step < 64 {
        x = y ^ (x >> shift);
        step += shift;
    }
    y ^ (x >> shift)
}

/// The inverse of an odd multiplier mod 2^64 (Newton's iteration doubles the correct bits).
const fn inverse(a: u64) -> u64 {
    let mut x = a;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

fn unscramble(z: u64) -> u64 {
    let z = unshift_xor(z, 31);
    let z = unshift_xor(z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb)), 27);
    unshift_xor(z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9)), 30)
}

/// `value` as 13 base32 characters (65 bits: the first character holds the top 4).
fn to_base32(value: u64) -> String {
    (0..SHORT_ID_CHARS)
        .rev()
        .map(|i| char::from(BASE32[((u128::from(value) >> (5 * i)) & 31) as usize]))
        .collect()
}

/// A base32 string of at most 13 characters as a number (and whether it fits 64 bits).
pub(crate) fn from_base32(text: &str) -> Option<u64> {
    let mut value: u128 = 0;
    for b in text.bytes() {
        let digit = BASE32.iter().position(|&c| c == b)?;
        value = (value << 5) | digit as u128;
    }
    u64::try_from(value).ok()
}

impl RunId {
    pub(crate) const HEX_DIGITS: usize = 16;

    /// The run id a run folder is named by: exactly as ids are shown.
    pub fn from_folder_name(name: &str) -> Option<RunId> {
        let id: RunId = name.parse().ok()?;
        (id.to_string() == name).then_some(id)
    }

    /// When the run was created (ids carry their creation time).
    pub fn created_at_ms(self) -> i64 {
        ((self.0 & !SHORT_ID_FLAG) >> TIME_SHIFT) as i64
    }

    /// The id a daemon with `tag` makes at `now_ms` after handing out the key `last`: greater
    /// than `last` (even when the clock went back), with the time of `now_ms` unless more than
    /// 2^(16 - RUN_ID_TAG_BITS) runs came in one millisecond (then a little ahead of the clock).
    pub fn next(last: u64, now_ms: u64, tag: RunIdTag) -> RunId {
        // A counter of time and sequence above the tag bits; the tag is the same in every key.
        let counter_of = |key: u64| (key & !SHORT_ID_FLAG) >> RUN_ID_TAG_BITS;
        let from_clock = now_ms << (TIME_SHIFT - RUN_ID_TAG_BITS);
        let counter = from_clock.max(counter_of(last) + 1);
        RunId(SHORT_ID_FLAG | (counter << RUN_ID_TAG_BITS) | u64::from(tag.value()))
    }

    pub(crate) fn is_short(self) -> bool {
        self.0 & SHORT_ID_FLAG != 0
    }

    /// The id's key in the store: 8 bytes, big-endian, so keys sort by creation time.
    pub fn key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    pub fn from_key(key: &[u8]) -> Result<Self> {
        let bytes: [u8; 8] = key
            .get(..8)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| StrataError::storage("corrupt run key"))?;
        Ok(RunId(u64::from_be_bytes(bytes)))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_short() {
            f.write_str(&to_base32(scramble(self.0)))
        } else {
            write!(f, "{:016x}", self.0)
        }
    }
}

impl FromStr for RunId {
    type Err = StrataError;

    fn from_str(s: &str) -> Result<Self> {
        let corrupt = || StrataError::storage(format!("corrupt run id '{s}'"));
        match s.len() {
            Self::HEX_DIGITS => u64::from_str_radix(s, 16)
                .ok()
                .filter(|key| key & SHORT_ID_FLAG == 0)
                .map(RunId)
                .ok_or_else(corrupt),
            SHORT_ID_CHARS => from_base32(s)
                .map(|shown| RunId(unscramble(shown)))
                .filter(|id| id.is_short())
                .ok_or_else(corrupt),
            _ => Err(corrupt()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are a bijection of their keys, and among 5,000 runs made in one millisecond (the
    /// worst case: keys differing only in their sequence number) 6 characters name each one.
    #[test]
    fn short_ids_round_trip_and_differ_early() {
        let mut z = 0x1234_5678_9abc_def0_u64;
        for _ in 0..10_000 {
            z = scramble(z.wrapping_add(0x9e37_79b9_7f4a_7c15));
            assert_eq!(unscramble(scramble(z)), z);
            let id = RunId(z | SHORT_ID_FLAG);
            assert_eq!(id.to_string().parse::<RunId>().unwrap(), id);
        }
        let base = SHORT_ID_FLAG | (1_795_900_000_000u64 << 16);
        let shown: Vec<String> = (0..5000).map(|seq| RunId(base + seq).to_string()).collect();
        let prefixes: std::collections::HashSet<&str> = shown.iter().map(|s| &s[..6]).collect();
        assert_eq!(
            prefixes.len(),
            shown.len(),
            "6-character prefixes are unique"
        );
    }

    /// Two daemons making ids in the same milliseconds never make the same one; each daemon's
    /// ids rise, carry their time, and sort after ids made before tags existed.
    #[test]
    fn ids_of_two_daemons_differ_and_keep_time_order() {
        let now = 1_795_900_000_000u64;
        let before_tags = SHORT_ID_FLAG | (now << 16) | 0x0123;
        let (a, b) = (RunIdTag::from_random(7), RunIdTag::from_random(0xfff));
        let (mut last_a, mut last_b) = (before_tags, before_tags);
        let mut seen = std::collections::HashSet::new();
        for ms in now..now + 3 {
            // More runs in one millisecond than the sequence holds, on both daemons.
            for _ in 0..40 {
                let (id_a, id_b) = (RunId::next(last_a, ms, a), RunId::next(last_b, ms, b));
                assert!(id_a.0 > last_a && id_b.0 > last_b, "ids rise");
                assert!(seen.insert(id_a) && seen.insert(id_b), "no id made twice");
                assert_eq!(id_a.0 & 0xfff, 7, "the tag is the low bits");
                assert!(id_a.created_at_ms() as u64 >= ms);
                assert!(id_a.is_short());
                assert_eq!(id_a.to_string().parse::<RunId>().unwrap(), id_a);
                (last_a, last_b) = (id_a.0, id_b.0);
            }
        }
        // A clock that went back still gives a greater id; a fresh daemon's first id has its time.
        assert!(RunId::next(last_a, now - 1000, a).0 > last_a);
        let first = RunId::next(0, now, b);
        assert_eq!(first.created_at_ms() as u64, now);
        assert!(
            first.0 < RunId::next(0, now + 1, a).0,
            "later runs sort later"
        );
        assert_eq!(RunIdTag::from_random(u64::MAX).value(), 0xfff);
    }
}
