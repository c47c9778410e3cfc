//! A run's record: what it is, how it was configured, its resolved rate table and how it ended.

use super::{DataFacts, RunConfig, RunId, RunStatus};

/// How long a parameter is kept from training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrozenUntil {
    /// Trained from the first epoch.
    Never,
    /// Frozen for the epochs before this one (1-based), trained from it on.
    Epoch(u32),
    /// Frozen for the whole run.
    Forever,
}

impl FrozenUntil {
    pub fn is_frozen_in(self, epoch: u32) -> bool {
        match self {
            FrozenUntil::Never => false,
            FrozenUntil::Epoch(until) => epoch < until,
            FrozenUntil::Forever => true,
        }
    }
}

/// Where a parameter's first values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamInit {
    /// PyTorch's default initialisation (or a TorchScript module's own weights).
    Fresh,
    /// Loaded from the checkpoint named by `init_from`.
    Loaded,
}

/// One parameter's resolved learning rate.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterRate {
    /// As PyTorch names it: `layer0.weight`, `head.bias`.
    pub name: String,
    /// The layer group: the name's prefix (`layer0`, `head`).
    pub group: String,
    pub shape: Vec<i64>,
    /// Base rate, before the schedule's multiplier.
    pub lr: f64,
    pub frozen: FrozenUntil,
    pub init: ParamInit,
}

impl ParameterRate {
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// A layer group as the rate table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRate {
    pub name: String,
    /// Its largest parameter's base rate (the weight's, for a layer).
    pub lr: f64,
    /// Its largest parameter's freezing.
    pub frozen: FrozenUntil,
}

/// Names in order of first appearance, each with the indices of the items that carry it: the
/// order of a model's layer groups, from its parameters.
pub fn groups_in_order<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    group_of: impl Fn(&T) -> &str,
) -> Vec<(String, Vec<usize>)>
where
    T: 'a,
{
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let name = group_of(item);
        match groups.iter_mut().find(|(g, _)| g == name) {
            Some((_, members)) => members.push(i),
            None => groups.push((name.to_string(), vec![i])),
        }
    }
    groups
}

/// Of a group's members (indices into `items`), the largest by element count: the parameter that
/// stands for the group's rate.
pub fn largest_member<T>(items: &[T], members: &[usize], numel: impl Fn(&T) -> i64) -> usize {
    members
        .iter()
        .copied()
        .max_by_key(|&i| numel(&items[i]))
        .unwrap_or(0)
}

/// The layer groups of a rate table in the model's order, each at its largest parameter's rate
/// and freezing (the weight's, for a layer).
pub fn group_rates(parameters: &[ParameterRate]) -> Vec<GroupRate> {
    groups_in_order(parameters, |p| &p.group)
        .into_iter()
        .map(|(name, members)| {
            let main = &parameters[largest_member(parameters, &members, ParameterRate::numel)];
            GroupRate {
                name,
                lr: main.lr,
                frozen: main.frozen,
            }
        })
        .collect()
}

/// Everything stored about a run except its epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: RunId,
    pub name: String,
    pub tags: Vec<String>,
    pub status: RunStatus,
    /// Why the run ended the way it did (failed, diverged, cancelled, interrupted), or empty.
    pub reason: String,
    /// With every default filled in.
    pub config: RunConfig,
    pub parameters: Vec<ParameterRate>,
    /// Unix milliseconds; 0 when not yet.
    pub created_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// What the data and the task are, as measured when the run was prepared.
    pub facts: DataFacts,
    /// Trainable scalars.
    pub parameter_count: u64,
    /// The device the run trains on.
    pub device: String,
    /// How many times the run was resumed.
    pub resumes: u32,
    /// The run's single-rate twin, when it was started with one.
    pub twin: Option<RunId>,
    /// For a single-rate twin: the run it is the twin of.
    pub twin_of: Option<RunId>,
    /// Trained by the daemon, or logged from outside.
    pub origin: RunOrigin,
    /// The sweep the run is a trial of.
    pub sweep: Option<SweepTrial>,
}

/// A run's place in a sweep: which sweep, which trial, and the values the sweep set.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepTrial {
    pub sweep_id: String,
    /// From 1.
    pub trial: u32,
    /// Setting name → value as the CLI takes it, in the sweep's order.
    pub settings: Vec<(String, String)>,
}

/// Who trains a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum RunOrigin {
    /// The daemon: queued, trained on a slot, checkpointed, resumable.
    #[default]
    Trained,
    /// A loop outside the daemon that logs its epochs (CreateRun, LogEpochs, FinishRun): no queue,
    /// no checkpoints, never resumed or cancelled by the daemon.
    External {
        /// Free-form, as the client gave them, sorted by key.
        hyperparameters: Vec<(String, String)>,
        /// The key its client chose to find the run again after a lost answer or from a spool
        /// (empty: none).
        client_key: String,
    },
}

impl RunRecord {
    /// A new run, queued, created now (its id's time).
    pub fn queued(
        id: RunId,
        config: RunConfig,
        parameters: Vec<ParameterRate>,
        facts: DataFacts,
    ) -> RunRecord {
        RunRecord {
            id,
            name: String::new(),
            tags: Vec::new(),
            status: RunStatus::Queued,
            reason: String::new(),
            config,
            parameter_count: parameters.iter().map(|p| p.numel().max(0) as u64).sum(),
            parameters,
            created_at_ms: id.created_at_ms(),
            started_at_ms: 0,
            finished_at_ms: 0,
            facts,
            device: "cpu".into(),
            resumes: 0,
            twin: None,
            twin_of: None,
            origin: RunOrigin::Trained,
            sweep: None,
        }
    }

    /// Logged from outside rather than trained by the daemon.
    pub fn is_external(&self) -> bool {
        matches!(self.origin, RunOrigin::External { .. })
    }

    /// The layer groups in the model's order, each at its largest parameter's rate.
    pub fn groups(&self) -> Vec<GroupRate> {
        groups_in_order(&self.parameters, |p| &p.group)
            .into_iter()
            .map(|(name, members)| {
                let main = &self.parameters
                    [largest_member(&self.parameters, &members, ParameterRate::numel)];
                GroupRate {
                    name,
                    lr: main.lr,
                    frozen: main.frozen,
                }
            })
            .collect()
    }

    /// The group's base rate as the rate table shows it; 0 if the run has no such group.
    pub fn group_rate(&self, group: &str) -> f64 {
        self.groups()
            .into_iter()
            .find(|g| g.name == group)
            .map_or(0.0, |g| g.lr)
    }

    /// Epochs the run is configured to train.
    pub fn planned_epochs(&self) -> u32 {
        self.config.epochs.unwrap_or(0)
    }
}

/// A run as queries answer it: its record with what is derived from the rest of the store.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub record: RunRecord,
    /// Epochs stored so far.
    pub epochs_done: u32,
    /// 1-based place in the queue while queued; 0 otherwise.
    pub queue_position: u32,
    /// The process id of the worker training it, while it trains; 0 otherwise.
    pub worker_pid: u32,
    /// While queued: why it waits, in words (empty otherwise).
    pub waiting: String,
    /// The remote worker training it (empty: none, or one of the daemon's own).
    pub worker: String,
    /// Remote workers lost while training it since it was started or resumed.
    pub worker_losses: u32,
}

#[cfg(test)]
impl RunRecord {
    /// A queued classification run with nothing configured: for tests.
    pub fn example(id: RunId) -> RunRecord {
        RunRecord::queued(
            id,
            RunConfig::default(),
            Vec::new(),
            DataFacts {
                task: super::TaskFacts::Classification { classes: 2 },
                train_rows: 0,
                val_rows: 0,
                steps_per_epoch: 0,
                label: String::new(),
                task_reason: String::new(),
                leakage: None,
            },
        )
    }
}
