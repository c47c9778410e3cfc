//! What the analysis concludes: a run's verdict and each layer group's diagnosis.

/// A run's verdict on its train and validation curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Both curves came down; validation is still near its best.
    Good,
    /// Settled well before the end and flat since: the rest of the run added little.
    Plateaued,
    /// Validation stopped improving while training kept falling.
    Overfitting,
    /// Losses jump up and down.
    Unstable,
    /// Still improving, but far from done.
    Slow,
    /// Validation never got clearly below the loss of a model that learned nothing.
    NotLearning,
    /// A loss became non-finite, or ended far above where an untrained model starts.
    Diverged,
    /// Too few epochs to judge.
    TooShort,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 8] = [
        Verdict::Good,
        Verdict::Plateaued,
        Verdict::Overfitting,
        Verdict::Unstable,
        Verdict::Slow,
        Verdict::NotLearning,
        Verdict::Diverged,
        Verdict::TooShort,
    ];

    /// The name in sentences and on the command line: `good`, `too-short`, ...
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Plateaued => "plateaued",
            Verdict::Overfitting => "overfitting",
            Verdict::Unstable => "unstable",
            Verdict::Slow => "slow",
            Verdict::NotLearning => "not-learning",
            Verdict::Diverged => "diverged",
            Verdict::TooShort => "too-short",
        }
    }
}

/// Whether a layer group's learning rate looks right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnosis {
    TooHigh,
    TooLow,
    Ok,
    Frozen,
}

impl Diagnosis {
    pub fn label(self) -> &'static str {
        match self {
            Diagnosis::TooHigh => "too-high",
            Diagnosis::TooLow => "too-low",
            Diagnosis::Ok => "ok",
            Diagnosis::Frozen => "frozen",
        }
    }
}
