//! A learning-rate range test (Leslie Smith 2015; fastai's `lr_find`) per layer group: its
//! settings and what it found. A probe is not a run: nothing of it is stored.

/// fastai's `lr_find(start_lr=1e-7, end_lr=10, num_it=100)`.
pub const DEFAULT_START_LR: f64 = 1e-7;
pub const DEFAULT_END_LR: f64 = 10.0;
pub const DEFAULT_LR_FIND_STEPS: u32 = 100;

/// How one group's rate is swept: exponentially from `start_lr` to `end_lr` over `steps`
/// optimizer steps (step `i`, from 0, at `start_lr · (end_lr/start_lr)^(i/steps)`, as fastai's
/// `SchedExp`), stopping early once the smoothed loss exceeds 4× its best.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFindRange {
    pub start_lr: f64,
    pub end_lr: f64,
    pub steps: u32,
}

impl Default for LrFindRange {
    fn default() -> Self {
        LrFindRange {
            start_lr: DEFAULT_START_LR,
            end_lr: DEFAULT_END_LR,
            steps: DEFAULT_LR_FIND_STEPS,
        }
    }
}

impl LrFindRange {
    /// The rate of step `step` (from 0).
    pub fn rate_at(&self, step: u32) -> f64 {
        self.start_lr * (self.end_lr / self.start_lr).powf(f64::from(step) / f64::from(self.steps))
    }
}

/// One optimizer step of a probe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// The probed group's rate at this step.
    pub lr: f64,
    /// The step's training batch loss (in the targets' units for a regression).
    pub loss: f64,
    /// The loss smoothed as fastai does (exponential average, β = 0.98, bias-corrected).
    pub smoothed: f64,
}

/// The rates a probe's curve suggests, each computed as fastai computes it on the smoothed
/// losses with the first `steps/10` and the last 5 points left out. `None` when too few points
/// were left (the loss diverged almost at once).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Suggestions {
    /// The rate where the loss falls fastest against log(rate).
    pub steep: Option<f64>,
    /// The rate of the lowest loss, divided by 10.
    pub minimum_div10: Option<f64>,
    /// About two thirds down the longest descending stretch (fastai's default suggestion).
    pub valley: Option<f64>,
}

/// What probing one group found.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupProbe {
    pub group: String,
    /// The rate the spec gives the group (its largest parameter's).
    pub current_lr: f64,
    /// Every step taken, in order.
    pub points: Vec<RatePoint>,
    /// The smoothed loss exceeded 4× its best (or the loss became non-finite) before the last
    /// step, and the sweep stopped there.
    pub diverged: bool,
    pub suggestions: Suggestions,
}

/// A group a probe leaves alone, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct SkippedGroup {
    pub group: String,
    pub reason: String,
}

/// One sampled step of the group being probed, for live progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFindProgress {
    /// Index of the group among the probed ones, from 0.
    pub group_index: u32,
    /// Steps taken so far in this group (from 1).
    pub step: u32,
    pub point: RatePoint,
}
