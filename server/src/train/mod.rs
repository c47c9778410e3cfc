//! What the daemon knows of training, without libtorch: datasets read and checked before a run is
//! stored ([`data`]), the checkpoint files workers send and the daemon keeps ([`checkpoint`]), and
//! a run checked against its data and the parameters its model has ([`probe_run_data`],
//! [`resolve_run`]).
//!
//! The training loop itself, the models, the optimizers and the learning-rate range test run in a
//! worker process (the `strata-worker` crate, which links libtorch); the daemon talks to it through
//! [`crate::workers`].

pub mod checkpoint;
pub mod data;

use crate::{
    domain::Leakage,
    error::{Result, StrataError},
    spec::{
        rates::{resolve_layer_rates, ParamInfo, ResolvedParam},
        RunSpec, Task,
    },
};
use data::DataShape;

/// A run checked against its real data and model, ready to be stored and queued.
pub struct PreparedRun {
    /// The spec, its config recording the task and the split the data gave.
    pub spec: RunSpec,
    pub resolved: Vec<ResolvedParam>,
    pub task: Task,
    /// A CSV's label column and why the task is what it is.
    pub label: Option<data::csv::LabelChoice>,
    /// Why the task is what it is.
    pub task_reason: String,
    /// What the leakage check found on the run's split (file datasets only).
    pub leakage: Option<Leakage>,
}

/// The most memory a training step's activations may take (float32 values, counted three times:
/// the values, their gradients and the optimizer's temporaries). A run asking for more is refused
/// before it is stored, instead of failing, or meeting the OOM killer, once it trains.
const MAX_ACTIVATION_BYTES: i64 = 8 << 30;

/// Reads what the dataset looks like (rejecting a bad file before anything is stored) and checks
/// that a batch of it fits the built-in model's activation budget. Blocking: it reads files.
pub fn probe_run_data(spec: &RunSpec) -> Result<DataShape> {
    let shape = data::probe_dataset(&spec.dataset, spec.seed)?;
    let per_sample = spec
        .model
        .activations_per_sample(&shape.sample, shape.task.outputs());
    if let Some(per_sample) = per_sample {
        let bytes = per_sample
            .saturating_mul(i64::from(spec.batch_size))
            .saturating_mul(4 * 3);
        if bytes > MAX_ACTIVATION_BYTES {
            return Err(StrataError::invalid(
                "batch_size",
                format!(
                    "a batch of {} makes this model hold about {} GiB of activations; at most {} GiB are allowed — lower batch_size or the layer widths",
                    spec.batch_size,
                    bytes >> 30,
                    MAX_ACTIVATION_BYTES >> 30
                ),
            ));
        }
    }
    Ok(shape)
}

/// Resolves the layer rates against the parameters the model has for this data (a built-in
/// model's are computed, [`crate::spec::ModelSpec::parameters`]; a TorchScript module's come
/// from a worker that loaded it), and records what the data is in the spec's config.
pub fn resolve_run(
    mut spec: RunSpec,
    shape: DataShape,
    params: &[ParamInfo],
) -> Result<PreparedRun> {
    let resolved = resolve_layer_rates(params, &spec.rates)?;
    let task_reason = match (&shape.label, spec.dataset.task, &spec.dataset.source) {
        (Some(choice), ..) => choice.reason.clone(),
        (None, Some(kind), _) => format!("task {} as asked", kind.label()),
        (None, None, crate::spec::DataSource::Synthetic(_)) => {
            format!("a synthetic {} set", shape.task.kind().label())
        }
        (None, None, _) => "detected: IDX labels are classes".to_string(),
    };
    spec.record_data(shape.task, shape.val_fraction);
    Ok(PreparedRun {
        spec,
        resolved,
        task: shape.task,
        label: shape.label,
        task_reason,
        leakage: shape.leakage,
    })
}
