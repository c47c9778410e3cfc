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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// The top bit of the key of every run with a short id.
pub(crate) const SHORT_ID_FLAG: u64 = 1 << 63;
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
        ((self.0 & !SHORT_ID_FLAG) >> 16) as i64
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
            .ok_or_else(|| StrataError::Storage("corrupt run key".into()))?;
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
        let corrupt = || StrataError::Storage(format!("corrupt run id '{s}'"));
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
}
