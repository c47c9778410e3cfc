//! Rows of a dataset as the leakage check and `dedupe` see them: all the samples read, or one side
//! of a split; each row's values; and 64-bit hashes of rows, so that finding a row among millions
//! takes a hash table, not a comparison with each of them.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use super::Samples;

/// Some rows of `samples`: all of them, or one side of a split. Rows are always visited in the
/// samples' own order: a side is a mask, not a shuffled list, so a pass over a million rows reads
/// memory front to back instead of jumping to a random row each time.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    samples: &'a Samples,
    /// `(in_val, side)`: the rows whose `in_val` flag equals `side`.
    side: Option<(&'a [bool], bool)>,
    len: usize,
}

impl<'a> Rows<'a> {
    pub fn all(samples: &'a Samples) -> Self {
        Rows {
            samples,
            side: None,
            len: samples.rows(),
        }
    }

    /// The training rows and the validation rows of a split (`in_val[row]`: validated on).
    pub fn split(samples: &'a Samples, in_val: &'a [bool]) -> (Self, Self) {
        let val = in_val.iter().filter(|&&v| v).count();
        let side = |validated: bool, len: usize| Rows {
            samples,
            side: Some((in_val, validated)),
            len,
        };
        (side(false, in_val.len() - val), side(true, val))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.samples.width()
    }

    /// The sample index of each row, in the samples' order.
    pub fn indices(&self) -> RowIndices<'a> {
        RowIndices {
            next: 0,
            end: self.samples.rows(),
            side: self.side,
        }
    }

    /// Sample `row`'s features.
    pub fn features(&self, row: usize) -> &'a [f32] {
        let width = self.width();
        &self.samples.features[row * width..(row + 1) * width]
    }

    /// Sample `row`'s target: a class index or a value.
    pub fn target(&self, row: usize) -> f32 {
        self.samples.targets[row]
    }
}

/// The sample indices of [`Rows`], in order.
pub struct RowIndices<'a> {
    next: usize,
    end: usize,
    side: Option<(&'a [bool], bool)>,
}

impl Iterator for RowIndices<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.next < self.end {
            let row = self.next;
            self.next += 1;
            match self.side {
                Some((in_val, side)) if in_val[row] != side => continue,
                _ => return Some(row),
            }
        }
        None
    }
}

/// Keys that are hashes already, used as they are by a `HashMap`.
#[derive(Default)]
pub struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// A map from row hashes.
pub type ByHash<V> = HashMap<u64, V, BuildHasherDefault<KeyIsHash>>;

pub fn by_hash<V>(capacity: usize) -> ByHash<V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// SplitMix64's finalizer: a bijection of 64-bit words that spreads every input bit over the
/// whole output.
pub fn mix(word: u64) -> u64 {
    let mut z = word.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds 64-bit words into one hash: a multiply and a rotation per word (each a bijection of the
/// state, so two rows differing in one word never collide), then [`mix`] over the result. Keys are
/// only ever compared, and every match is confirmed on the values, so a collision (odds about
/// n²/2⁶⁴ among n rows) can at worst hide a match, never make one.
pub struct RowHasher(u64);

impl Default for RowHasher {
    fn default() -> Self {
        RowHasher(0x243F_6A88_85A3_08D3)
    }
}

impl RowHasher {
    pub fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    pub fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// A value's bits, with -0 read as 0 (they parse from different text but are the same number).
fn bits(value: f32) -> u32 {
    if value == 0.0 {
        0
    } else {
        value.to_bits()
    }
}

/// The hash of a row as parsed: its features, then its target.
pub fn exact_key(features: &[f32], target: f32) -> u64 {
    let mut hasher = RowHasher::default();
    let mut pairs = features.chunks_exact(2);
    for pair in &mut pairs {
        hasher.add(u64::from(bits(pair[0])) << 32 | u64::from(bits(pair[1])));
    }
    let last = pairs
        .remainder()
        .first()
        .map_or(1 << 32, |&v| u64::from(bits(v)));
    hasher.add(last);
    hasher.add(u64::from(bits(target)));
    hasher.finish()
}

/// Whether two rows hold the same numbers (-0 and 0 alike; values are finite, never NaN).
pub fn same_values(a: &[f32], a_target: f32, b: &[f32], b_target: f32) -> bool {
    a_target == b_target && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hash_by_their_numbers() {
        assert_eq!(
            exact_key(&[1.0, -0.0, 2.5], 1.0),
            exact_key(&[1.0, 0.0, 2.5], 1.0)
        );
        assert_ne!(
            exact_key(&[1.0, 0.0, 2.5], 1.0),
            exact_key(&[1.0, 0.0, 2.5], 0.0)
        );
        assert_ne!(exact_key(&[1.0, 2.5], 0.0), exact_key(&[2.5, 1.0], 0.0));
        // An odd row is not the even row with a zero added.
        assert_ne!(exact_key(&[1.0], 0.0), exact_key(&[1.0, 0.0], 0.0));
        assert!(same_values(&[1.0, -0.0], 2.0, &[1.0, 0.0], 2.0));
    }
}
