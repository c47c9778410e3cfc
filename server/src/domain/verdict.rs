//! What the analysis concludes: a run's verdict and each layer group's diagnosis.

/// A run's verdict on its train and validation curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Good,
    Overfitting,
    Unstable,
    Slow,
    Diverged,
    TooShort,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 6] = [
        Verdict::Good,
        Verdict::Overfitting,
        Verdict::Unstable,
        Verdict::Slow,
        Verdict::Diverged,
        Verdict::TooShort,
    ];

    /// The name in sentences and on the command line: `good`, `too-short`, ...
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Overfitting => "overfitting",
            Verdict::Unstable => "unstable",
            Verdict::Slow => "slow",
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
