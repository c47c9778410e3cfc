//! A regression's targets, standardized for training with the training targets' mean and
//! standard deviation (as the features are), so that the scale of a target column — a forgotten
//! `--label` can pick one with a variance of 3e-4 — does not decide whether a rate works. Losses
//! are reported back in the targets' own units (the squared error × σ²), R² is unchanged, and the
//! statistics are kept in every checkpoint so a resumed run goes on with the same ones.

use tch::{Kind, TchError, Tensor};

/// How targets were rescaled for training: `(y − mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetScaling {
    pub mean: f64,
    pub std: f64,
}

/// Below this standard deviation the targets are constant: they are left unscaled.
const MIN_TARGET_STD: f64 = 1e-12;

impl TargetScaling {
    /// Classification (and constant targets): nothing rescaled.
    pub const IDENTITY: TargetScaling = TargetScaling {
        mean: 0.0,
        std: 1.0,
    };

    /// The training targets' mean and population standard deviation.
    pub fn of(targets: &Tensor) -> Result<TargetScaling, TchError> {
        let targets = targets.f_to_kind(Kind::Double)?;
        let mean = targets.f_mean(Kind::Double)?.f_double_value(&[])?;
        let variance = targets
            .f_sub_scalar(mean)?
            .f_square()?
            .f_mean(Kind::Double)?
            .f_double_value(&[])?;
        let std = variance.sqrt();
        Ok(if std.is_finite() && std > MIN_TARGET_STD {
            TargetScaling { mean, std }
        } else {
            TargetScaling {
                mean: if mean.is_finite() { mean } else { 0.0 },
                std: 1.0,
            }
        })
    }

    /// The scaling a run trains with: the one its checkpoint kept; for a run resumed from a
    /// checkpoint that kept none (written before targets were scaled, so its weights learned the
    /// raw targets), none at all; else the training targets' own.
    pub fn choose(
        kept: Option<TargetScaling>,
        resuming: bool,
        fresh: impl FnOnce() -> Result<TargetScaling, TchError>,
    ) -> Result<TargetScaling, TchError> {
        match (kept, resuming) {
            (Some(kept), _) => Ok(kept),
            (None, true) => Ok(TargetScaling::IDENTITY),
            (None, false) => fresh(),
        }
    }

    pub fn standardize(&self, targets: &Tensor) -> Result<Tensor, TchError> {
        targets
            .f_sub_scalar(self.mean)?
            .f_div_scalar(self.std)?
            .f_to_kind(targets.kind())
    }

    /// What a mean squared error on standardized targets is multiplied by to be in the targets'
    /// units.
    pub fn loss_factor(&self) -> f64 {
        self.std * self.std
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_standardized_and_losses_come_back_in_their_units() {
        let y = Tensor::from_slice(&[0.01f32, 0.02, 0.03, 0.04]);
        let scaling = TargetScaling::of(&y).unwrap();
        assert!((scaling.mean - 0.025).abs() < 1e-9);
        let z = scaling.standardize(&y).unwrap();
        let mean = z.mean(Kind::Double).double_value(&[]);
        let var = z.square().mean(Kind::Double).double_value(&[]);
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        // A squared error of 1 in standardized units is the targets' variance.
        assert!((scaling.loss_factor() - 1.25e-4).abs() < 1e-9);
        let constant = TargetScaling::of(&Tensor::from_slice(&[3.0f32; 4])).unwrap();
        assert_eq!(constant.std, 1.0);
        assert_eq!(TargetScaling::IDENTITY.loss_factor(), 1.0);
    }

    /// A run resumed from a checkpoint written before targets were scaled trained on the raw
    /// targets: rescaling them under its weights made its loss jump a thousandfold.
    #[test]
    fn an_old_checkpoint_resumes_on_raw_targets() {
        let kept = TargetScaling {
            mean: 3.0,
            std: 2.0,
        };
        let fresh = || {
            Ok(TargetScaling {
                mean: 9.0,
                std: 9.0,
            })
        };
        assert_eq!(
            TargetScaling::choose(Some(kept), true, fresh).unwrap(),
            kept
        );
        assert_eq!(
            TargetScaling::choose(Some(kept), false, fresh).unwrap(),
            kept
        );
        assert_eq!(
            TargetScaling::choose(None, true, fresh).unwrap(),
            TargetScaling::IDENTITY
        );
        assert_eq!(TargetScaling::choose(None, false, fresh).unwrap().mean, 9.0);
    }
}
