//! How many of a run's epochs one answer carries, and which ones when the run is longer.
//!
//! A run may hold up to a million epochs (`spec::limits`), but a chart is a few thousand pixels
//! wide and one answer must stay a few megabytes: beyond [`MAX_RETURNED_EPOCHS`] an answer carries
//! an even spread of the run's epochs that always keeps the first, the best and the last, and
//! says it was thinned. Every epoch stays readable in pages of at most [`MAX_RETURNED_EPOCHS`]
//! (GetRun's `from_epoch`), which is how `strata export` writes them all.

/// The most epochs one run's answer carries (GetRun, the dashboard's run page, one page of a
/// paged GetRun). 2,000 epochs × 256 groups is ~50 MB of JSON at worst; × 16 groups, ~3 MB.
pub const MAX_RETURNED_EPOCHS: usize = 2_000;

/// The most epoch × group records one run's answer carries: a run of many groups is answered
/// with fewer epochs (256 groups: 390), so that an answer — and the JSON the dashboard builds of
/// it, ~500 bytes a group record while it is built — stays within ~50 MB whatever the run's shape.
pub const MAX_RETURNED_GROUP_RECORDS: usize = 100_000;

/// The most epochs one comparison carries over all its runs: each run gets an even share of it,
/// up to [`MAX_RETURNED_EPOCHS`] (2 runs: 2,000 each; 100 runs: 200 each; 1,000 runs: 20 each).
pub const MAX_COMPARED_EPOCHS: usize = 20_000;
/// The most epoch × group records one comparison carries over all its runs.
pub const MAX_COMPARED_GROUP_RECORDS: usize = 400_000;

/// The fewest epochs a thinned answer carries: the first, the best and the last.
const MIN_THINNED_EPOCHS: usize = 3;

/// The most epochs one answer carries of a run of `groups` groups: [`MAX_RETURNED_EPOCHS`], fewer
/// for a run of more than 50 groups ([`MAX_RETURNED_GROUP_RECORDS`]).
pub fn returned_epochs(groups: usize) -> usize {
    (MAX_RETURNED_GROUP_RECORDS / groups.max(1)).clamp(MIN_THINNED_EPOCHS, MAX_RETURNED_EPOCHS)
}

/// The epochs one of `runs` compared runs, of `groups` groups, may carry.
pub fn compared_epochs_per_run(runs: usize, groups: usize) -> usize {
    let runs = runs.max(1);
    (MAX_COMPARED_EPOCHS / runs)
        .min(MAX_COMPARED_GROUP_RECORDS / runs / groups.max(1))
        .clamp(MIN_THINNED_EPOCHS, returned_epochs(groups))
}

/// Which of `len` epochs (positions 0..len) an answer of at most `cap` keeps, in order: all of
/// them when they fit; otherwise `cap - 1` evenly spread positions from the first to the last,
/// plus `best` (the best epoch's position) when the spread missed it.
pub fn kept_positions(len: usize, best: Option<usize>, cap: usize) -> Vec<usize> {
    let cap = cap.max(MIN_THINNED_EPOCHS);
    if len <= cap {
        return (0..len).collect();
    }
    let spread = cap - 1;
    let mut kept: Vec<usize> = (0..spread)
        .map(|i| ((i as u128 * (len - 1) as u128) / (spread - 1) as u128) as usize)
        .collect();
    if let Some(best) = best.filter(|&b| b < len) {
        if let Err(at) = kept.binary_search(&best) {
            kept.insert(at, best);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_runs_with_many_groups_carry_fewer_epochs() {
        assert_eq!(returned_epochs(3), MAX_RETURNED_EPOCHS);
        assert_eq!(returned_epochs(50), MAX_RETURNED_EPOCHS);
        assert_eq!(returned_epochs(256), 390);
        assert_eq!(compared_epochs_per_run(100, 3), 200);
        assert_eq!(compared_epochs_per_run(2, 3), MAX_RETURNED_EPOCHS);
        assert_eq!(compared_epochs_per_run(2, 256), 390);
        assert_eq!(compared_epochs_per_run(100, 256), 15);
        assert_eq!(compared_epochs_per_run(1000, 256), MIN_THINNED_EPOCHS);
    }

    #[test]
    fn short_runs_are_whole() {
        assert_eq!(kept_positions(5, Some(2), 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(kept_positions(0, None, 10), Vec::<usize>::new());
        assert_eq!(kept_positions(3, Some(0), 3), vec![0, 1, 2]);
    }

    #[test]
    fn long_runs_keep_first_best_and_last_within_the_cap() {
        for (len, best, cap) in [
            (100_000, Some(31_337), 2_000),
            (10, Some(0), 4),
            (10, Some(9), 4),
            (1_000_001, Some(1), 2_000),
            (7, Some(3), 1),
        ] {
            let kept = kept_positions(len, best, cap);
            assert!(kept.len() <= cap.max(MIN_THINNED_EPOCHS), "{len} {cap}");
            assert_eq!(kept[0], 0);
            assert_eq!(*kept.last().unwrap(), len - 1);
            assert!(kept.contains(&best.unwrap()));
            assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        }
    }

    #[test]
    fn the_spread_is_even() {
        let kept = kept_positions(10_000, None, 101);
        assert_eq!(kept.len(), 100);
        let steps: Vec<usize> = kept.windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = (steps.iter().min().unwrap(), steps.iter().max().unwrap());
        assert!(max - min <= 1, "steps from {min} to {max}");
        assert_eq!(
            kept_positions(10, Some(6), 4),
            vec![0, 4, 6, 9],
            "the best joins the spread"
        );
    }

    #[test]
    fn comparisons_share_the_budget() {
        assert_eq!(compared_epochs_per_run(1, 3), MAX_RETURNED_EPOCHS);
        assert_eq!(compared_epochs_per_run(100, 3), 200);
        assert_eq!(compared_epochs_per_run(1_000_000, 3), MIN_THINNED_EPOCHS);
    }
}
