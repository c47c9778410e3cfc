//! Rows of a dataset as the leakage check and `dedupe` see them: all the samples read, or one side
//! of a split; each row's values; and 64-bit hashes of rows, so that finding a row among millions
//! takes a hash table, not a comparison with each of them.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
};

use super::Samples;

/// Some rows of `samples`: all of them, or those listed (one side of a split).
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    samples: &'a Samples,
    listed: Option<&'a [i64]>,
}

impl<'a> Rows<'a> {
    pub fn all(samples: &'a Samples) -> Self {
        Rows {
            samples,
            listed: None,
        }
    }

    /// The rows at these sample indices.
    pub fn listed(samples: &'a Samples, rows: &'a [i64]) -> Self {
        Rows {
            samples,
            listed: Some(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.listed.map_or(self.samples.rows(), <[i64]>::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.samples.width()
    }

    /// The sample index of each row, in order.
    pub fn indices(&self) -> Box<dyn Iterator<Item = usize> + 'a> {
        match self.listed {
            Some(rows) => Box::new(rows.iter().map(|&r| r as usize)),
            None => Box::new(0..self.samples.rows()),
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

/// Folds 64-bit words into one hash, each through [`mix`]. Keys are only ever compared, and every
/// match is confirmed on the values, so a collision (odds about n²/2⁶⁴ among n rows) can at worst
/// hide a match, never make one.
pub struct RowHasher(u64);

impl Default for RowHasher {
    fn default() -> Self {
        RowHasher(0x243F_6A88_85A3_08D3)
    }
}

impl RowHasher {
    pub fn add(&mut self, word: u64) {
        self.0 = mix(self.0 ^ word);
    }

    pub fn finish(self) -> u64 {
        self.0
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
