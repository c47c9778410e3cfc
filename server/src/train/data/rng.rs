//! The seeded generator that makes datasets and shuffles reproducible: Strata's one SplitMix64
//! ([`strata_rng`]), started from a user's seed with [`SeededRng::seeded`].

pub use strata_rng::SplitMix64 as SeededRng;
