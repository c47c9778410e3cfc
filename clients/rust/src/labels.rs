//! What the client reads out of the daemon's values, named once: a run's status as users see it,
//! an epoch's gap and validation metric, a parameter's freeze state and init, its layer groups
//! (in the daemon's order, at the rate the daemon gives each).
//!
//! Every output (tables, `--json`, export, the charts) takes these readings from here, so a
//! change to how the wire carries them is made in this file.

use std::borrow::Cow;

use strata_proto::{
    epoch_record, frozen, Diagnosis, EpochRecord, Frozen, GroupRate, ParameterInit, ParameterRate,
    RunStatus, ValMetric, Verdict,
};

/// A run status as users see it (`completed`), or `unknown(N)` for a value this client does not
/// know (a newer daemon).
pub fn status_label(raw: i32) -> Cow<'static, str> {
    match RunStatus::try_from(raw) {
        Ok(status) => Cow::Borrowed(status.label()),
        Err(_) => Cow::Owned(format!("unknown({raw})")),
    }
}

/// A verdict as users see it (`good`, `not-learning`), or `unknown(N)` from a newer daemon.
pub fn verdict_label(raw: i32) -> Cow<'static, str> {
    match Verdict::try_from(raw) {
        Ok(verdict) => Cow::Borrowed(verdict.label()),
        Err(_) => Cow::Owned(format!("unknown({raw})")),
    }
}

/// A diagnosis as users see it (`ok`, `too-high`, `too-low`, `frozen`).
pub fn diagnosis_label(raw: i32) -> Cow<'static, str> {
    match Diagnosis::try_from(raw) {
        Ok(diagnosis) => Cow::Borrowed(diagnosis.label()),
        Err(_) => Cow::Owned(format!("unknown({raw})")),
    }
}

/// A run's validation metric as users see it: `accuracy` or `r2`.
pub fn metric_label(raw: i32) -> &'static str {
    ValMetric::try_from(raw).map_or("unspecified", ValMetric::label)
}

/// The generalization gap of one epoch: validation loss minus training loss.
pub fn epoch_gap(epoch: &EpochRecord) -> f64 {
    epoch.val_loss - epoch.train_loss
}

/// Which validation metric an epoch carries, and its value: `("val_accuracy", 0.93)` or
/// `("val_r2", 0.81)`, named for what it is.
pub fn val_metric(epoch: &EpochRecord) -> (&'static str, f64) {
    match epoch.val_metric {
        Some(epoch_record::ValMetric::ValR2(value)) => ("val_r2", value),
        Some(epoch_record::ValMetric::ValAccuracy(value)) => ("val_accuracy", value),
        None => ("val_accuracy", f64::NAN),
    }
}

/// `fresh` or `loaded`, as tables and `--json` print a parameter's init.
pub fn init_label(parameter: &ParameterRate) -> &'static str {
    match ParameterInit::try_from(parameter.init) {
        Ok(ParameterInit::Loaded) => "loaded",
        _ => "fresh",
    }
}

/// A parameter's (or a group's) freeze state, read from the wire's `Frozen` message (unset:
/// trained from the start).
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
    /// The freeze state of `parameter`.
    pub fn of(parameter: &ParameterRate) -> FrozenUntil {
        FrozenUntil::from_wire(parameter.frozen.as_ref())
    }

    pub fn from_wire(frozen: Option<&Frozen>) -> FrozenUntil {
        match frozen.and_then(|f| f.until.as_ref()) {
            None => FrozenUntil::Never,
            Some(frozen::Until::Epoch(epoch)) => FrozenUntil::Epoch(*epoch),
            Some(frozen::Until::Forever(_)) => FrozenUntil::Forever,
        }
    }

    /// The number `--json` prints for it (0, N or -1), which scripts rely on.
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
    /// The group as the daemon reports it: its name, rate and freeze state.
    pub group: &'a GroupRate,
    /// The group's parameters in the daemon's order.
    pub parameters: Vec<&'a ParameterRate>,
}

/// The parameters by layer group, in the daemon's order of groups.
pub fn parameter_groups<'a>(
    groups: &'a [GroupRate],
    parameters: &'a [ParameterRate],
) -> Vec<ParameterGroup<'a>> {
    groups
        .iter()
        .map(|group| ParameterGroup {
            group,
            parameters: parameters
                .iter()
                .filter(|p| p.group == group.name)
                .collect(),
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

    fn parameter(name: &str, group: &str) -> ParameterRate {
        ParameterRate {
            name: name.into(),
            group: group.into(),
            shape: vec![1],
            lr: 1e-3,
            frozen: None,
            init: ParameterInit::Fresh as i32,
        }
    }

    #[test]
    fn frozen_reads_the_wire_message() {
        let frozen = |until| FrozenUntil::from_wire(Some(&Frozen { until }));
        assert_eq!(FrozenUntil::from_wire(None), FrozenUntil::Never);
        assert_eq!(frozen(None), FrozenUntil::Never);
        assert_eq!(frozen(Some(frozen::Until::Epoch(3))), FrozenUntil::Epoch(3));
        assert_eq!(
            frozen(Some(frozen::Until::Forever(true))),
            FrozenUntil::Forever
        );
        assert_eq!(FrozenUntil::Epoch(3).as_number(), 3);
        assert_eq!(FrozenUntil::Forever.as_number(), -1);
    }

    #[test]
    fn groups_follow_the_daemons_order_and_collect_their_parameters() {
        let parameters = [
            parameter("layer0.bias", "layer0"),
            parameter("head.weight", "head"),
            parameter("layer0.weight", "layer0"),
        ];
        let group = |name: &str| GroupRate {
            name: name.into(),
            lr: 1e-3,
            frozen: None,
        };
        let groups = [group("layer0"), group("head")];
        let grouped = parameter_groups(&groups, &parameters);
        let names: Vec<&str> = grouped.iter().map(|g| g.group.name.as_str()).collect();
        assert_eq!(names, ["layer0", "head"]);
        assert_eq!(grouped[0].parameters.len(), 2);
        assert_eq!(grouped[1].parameters[0].name, "head.weight");
    }
}
