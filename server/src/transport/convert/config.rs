//! What a run is asked to be, on the wire and in the domain: its config, the start request and
//! what starting answers (the parameters with their rates and groups).

use strata_proto as proto;

use crate::{
    domain::{group_rates, FrozenUntil, GroupRate, ParamInit, ParameterRate, RunConfig},
    error::StrataError,
    runs::{Baseline, StartRequest, Started},
};

impl From<proto::RunConfig> for RunConfig {
    fn from(config: proto::RunConfig) -> Self {
        let proto::RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
            dedupe,
            on_worker,
        } = config;
        RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
            dedupe,
            on_worker,
        }
    }
}

impl From<RunConfig> for proto::RunConfig {
    fn from(config: RunConfig) -> Self {
        let RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
            dedupe,
            on_worker,
        } = config;
        proto::RunConfig {
            dataset,
            samples,
            noise,
            classes,
            val_fraction,
            model,
            optimizer,
            lr,
            momentum,
            weight_decay,
            layer_lr,
            freeze,
            lr_decay,
            lr_slice,
            schedule,
            epochs,
            batch_size,
            seed,
            device,
            progress_events_per_epoch,
            label,
            val_dataset,
            task,
            init_from,
            clip_grad_norm,
            dedupe,
            on_worker,
        }
    }
}

impl TryFrom<proto::StartRunRequest> for StartRequest {
    type Error = StrataError;

    fn try_from(request: proto::StartRunRequest) -> Result<Self, StrataError> {
        let proto::StartRunRequest {
            config,
            name,
            tags,
            dry_run,
            baseline,
            sweep,
        } = request;
        let config = config.ok_or_else(|| StrataError::invalid("config", "required"))?;
        let baseline = baseline
            .map(|proto::Baseline { lr }| match lr {
                Some(lr) if !(lr.is_finite() && lr > 0.0) => Err(StrataError::invalid(
                    "baseline.lr",
                    format!(
                        "{} is not a learning rate; a positive number is",
                        crate::spec::shown_number(lr)
                    ),
                )),
                lr => Ok(Baseline { lr }),
            })
            .transpose()?;
        Ok(StartRequest {
            config: config.into(),
            name,
            tags,
            dry_run,
            baseline,
            sweep: sweep.map(super::run::sweep_trial_from_proto),
        })
    }
}

impl From<Started> for proto::StartRunResponse {
    fn from(started: Started) -> Self {
        let Started {
            id,
            parameters,
            config,
            facts,
            warnings,
            twin,
        } = started;
        proto::StartRunResponse {
            run_id: id.map_or(String::new(), |id| id.to_string()),
            groups: group_rates(&parameters)
                .into_iter()
                .map(Into::into)
                .collect(),
            parameters: parameters.into_iter().map(Into::into).collect(),
            config: Some(config.into()),
            facts: Some(facts.into()),
            warnings,
            twin_run_id: twin.map_or(String::new(), |id| id.to_string()),
        }
    }
}

impl From<ParameterRate> for proto::ParameterRate {
    fn from(p: ParameterRate) -> Self {
        let ParameterRate {
            name,
            group,
            shape,
            lr,
            frozen,
            init,
        } = p;
        proto::ParameterRate {
            name,
            group,
            shape,
            lr,
            frozen: frozen_to_proto(frozen),
            init: match init {
                ParamInit::Fresh => proto::ParameterInit::Fresh,
                ParamInit::Loaded => proto::ParameterInit::Loaded,
            } as i32,
        }
    }
}

impl From<GroupRate> for proto::GroupRate {
    fn from(group: GroupRate) -> Self {
        let GroupRate { name, lr, frozen } = group;
        proto::GroupRate {
            name,
            lr,
            frozen: frozen_to_proto(frozen),
        }
    }
}

fn frozen_to_proto(frozen: FrozenUntil) -> Option<proto::Frozen> {
    let until = match frozen {
        FrozenUntil::Never => return None,
        FrozenUntil::Epoch(epoch) => proto::frozen::Until::Epoch(epoch),
        FrozenUntil::Forever => proto::frozen::Until::Forever(true),
    };
    Some(proto::Frozen { until: Some(until) })
}
