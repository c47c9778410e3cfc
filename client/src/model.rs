//! What the client reads out of the daemon's values, named once: a run's status as users see it,
//! an epoch's gap, a parameter's freeze state, its layer groups (their order and their rate).
//!
//! Every output (tables, `--json`, export, the charts) takes these readings from here, so a
//! change to how the wire carries them is made in this file.

use std::borrow::Cow;

use strata_proto::{EpochRecord, ParameterRate, RunStatus};

/// A run status as users see it (`completed`), or `unknown(N)` for a value this client does not
/// know (a newer daemon).
pub fn status_label(raw: i32) -> Cow<'static, str> {
    match RunStatus::try_from(raw) {
        Ok(status) => Cow::Borrowed(status.label()),
        Err(_) => Cow::Owned(format!("unknown({raw})")),
    }
}

/// The generalization gap of one epoch: validation loss minus training loss.
pub fn epoch_gap(epoch: &EpochRecord) -> f64 {
    epoch.val_loss - epoch.train_loss
}

/// A parameter's freeze state. The wire carries it as `ParameterRate.frozen_until`: 0 trained
/// from the start, N > 0 frozen until epoch N, -1 frozen for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrozenUntil {
    /// Trained from the first epoch.
    Never,
    /// Frozen for the epochs before this one (1-based), trained from it on.
    Epoch(u32),
    /// Never trained.
    Forever,
}

impl FrozenUntil {
    /// The freeze state of `parameter`. Any negative number reads as "for good".
    pub fn of(parameter: &ParameterRate) -> FrozenUntil {
        match u32::try_from(parameter.frozen_until) {
            Ok(0) => FrozenUntil::Never,
            Ok(epoch) => FrozenUntil::Epoch(epoch),
            Err(_) => FrozenUntil::Forever,
        }
    }

    /// The number `--json` prints for it, the wire's own (0, N or -1), which scripts rely on.
    pub fn as_number(self) -> i64 {
        match self {
            FrozenUntil::Never => 0,
            FrozenUntil::Epoch(epoch) => i64::from(epoch),
            FrozenUntil::Forever => -1,
        }
    }
}

/// Names in the order they first appear, each once: the order in which layer groups are shown
/// everywhere (the model's order, as the daemon lists them).
pub fn in_first_appearance_order<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ordered: Vec<&str> = Vec::new();
    for name in names {
        if !ordered.contains(&name) {
            ordered.push(name);
        }
    }
    ordered
}

/// One layer group of a run's resolved rate table.
#[derive(Clone, Debug)]
pub struct ParameterGroup<'a> {
    pub name: &'a str,
    /// The group's parameters in the daemon's order.
    pub parameters: Vec<&'a ParameterRate>,
    /// The parameter whose rate and freeze state are the group's, as the daemon reports a
    /// group's rate: its largest (the weight, not the bias), the first of those of equal size.
    pub leading: &'a ParameterRate,
}

/// The parameters by layer group, groups in [`in_first_appearance_order`].
pub fn parameter_groups(parameters: &[ParameterRate]) -> Vec<ParameterGroup<'_>> {
    let size = |p: &ParameterRate| p.shape.iter().product::<i64>();
    in_first_appearance_order(parameters.iter().map(|p| p.group.as_str()))
        .into_iter()
        .filter_map(|name| {
            let members: Vec<&ParameterRate> =
                parameters.iter().filter(|p| p.group == name).collect();
            let leading = members.iter().copied().reduce(|leading, p| {
                if size(p) > size(leading) {
                    p
                } else {
                    leading
                }
            })?;
            Some(ParameterGroup {
                name,
                parameters: members,
                leading,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels() {
        assert_eq!(status_label(RunStatus::Completed as i32), "completed");
        assert_eq!(status_label(99), "unknown(99)");
    }

    fn parameter(name: &str, group: &str, shape: Vec<i64>, frozen_until: i32) -> ParameterRate {
        ParameterRate {
            name: name.into(),
            group: group.into(),
            shape,
            lr: 1e-3,
            frozen_until,
            init: "fresh".into(),
        }
    }

    #[test]
    fn frozen_until_reads_the_wire_sentinels() {
        let frozen = |n| FrozenUntil::of(&parameter("a.weight", "a", vec![1], n));
        assert_eq!(frozen(0), FrozenUntil::Never);
        assert_eq!(frozen(3), FrozenUntil::Epoch(3));
        assert_eq!(frozen(-1), FrozenUntil::Forever);
        for n in [0, 3, -1] {
            assert_eq!(frozen(n).as_number(), i64::from(n));
        }
    }

    #[test]
    fn groups_keep_the_model_order_and_take_their_largest_parameters_rate() {
        let parameters = [
            parameter("layer0.bias", "layer0", vec![16], 0),
            parameter("head.weight", "head", vec![3, 16], 0),
            parameter("layer0.weight", "layer0", vec![16, 2], 2),
            parameter("layer0.scale", "layer0", vec![2, 16], -1),
        ];
        let groups = parameter_groups(&parameters);
        let names: Vec<&str> = groups.iter().map(|g| g.name).collect();
        assert_eq!(names, ["layer0", "head"]);
        assert_eq!(groups[0].parameters.len(), 3);
        assert_eq!(groups[0].leading.name, "layer0.weight");
        assert_eq!(groups[1].leading.name, "head.weight");
    }
}
