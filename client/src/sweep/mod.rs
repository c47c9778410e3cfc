//! Sweeps: many runs of one spec with different settings, to answer "which rates should each
//! layer get?". The sweep is driven by the `strata sweep` process (as an Optuna study is by its
//! process): [`space`] turns the flags into trials (a grid, or a seeded random search),
//! [`driver`] places them on the daemons by their free slots, watches them and stops hopeless
//! ones by [`stopping`]'s rule, and [`report`] ranks a sweep's trials from what the daemons
//! recorded.

pub mod driver;
pub mod report;
pub mod space;
pub mod stopping;

pub use driver::{drive, Progress, Trial, TrialEnd, TrialResult};
pub use report::{sweep_report, SweepReport};
pub use space::{SpecError, SweepSpace, Target, TrialPlan, MAX_SWEEP_TRIALS};
pub use stopping::StoppingRule;

/// A new sweep id: 10 characters of [0-9a-z], from the time and the process id, so that two
/// sweeps started at once do not share one.
pub fn new_sweep_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = strata_rng::SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32));
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| ALPHABET[rng.pick(ALPHABET.len())] as char)
        .collect()
}
