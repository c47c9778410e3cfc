//! The stored messages to and from the domain's runs and epochs.

use super::{
    DecodeResult, StoredConfig, StoredEpoch, StoredExternal, StoredFacts, StoredGroupStats,
    StoredHyperparameter, StoredLeakage, StoredLeakyColumn, StoredParameter, StoredRun,
    StoredScalar, StoredSweepTrial,
};
use crate::domain::{
    ColumnLeak, DataFacts, EpochMetrics, FrozenUntil, GroupStats, Leakage, LeakyColumn, ParamInit,
    ParameterRate, RunConfig, RunId, RunOrigin, RunRecord, RunStatus, SweepTrial, TaskFacts,
};

fn status_code(status: RunStatus) -> i32 {
    match status {
        RunStatus::Queued => 1,
        RunStatus::Running => 2,
        RunStatus::Completed => 3,
        RunStatus::Failed => 4,
        RunStatus::Cancelled => 5,
        RunStatus::Diverged => 6,
        RunStatus::Interrupted => 7,
    }
}

fn status_of(code: i32) -> DecodeResult<RunStatus> {
    RunStatus::ALL
        .into_iter()
        .find(|s| status_code(*s) == code)
        .ok_or_else(|| format!("unknown run status {code}"))
}

impl From<&RunConfig> for StoredConfig {
    fn from(config: &RunConfig) -> Self {
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
        } = config.clone();
        StoredConfig {
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
            clip_grad_norm,
            init_from,
            dedupe,
            on_worker,
        }
    }
}

impl From<StoredConfig> for RunConfig {
    fn from(stored: StoredConfig) -> Self {
        let StoredConfig {
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
            clip_grad_norm,
            init_from,
            dedupe,
            on_worker,
        } = stored;
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

impl From<&ParameterRate> for StoredParameter {
    fn from(p: &ParameterRate) -> Self {
        StoredParameter {
            name: p.name.clone(),
            group: p.group.clone(),
            shape: p.shape.clone(),
            lr: p.lr,
            frozen_until: match p.frozen {
                FrozenUntil::Never => 0,
                FrozenUntil::Epoch(e) => e.min(i32::MAX as u32) as i32,
                FrozenUntil::Forever => -1,
            },
            init: match p.init {
                ParamInit::Fresh => "fresh",
                ParamInit::Loaded => "loaded",
            }
            .into(),
        }
    }
}

impl From<StoredParameter> for ParameterRate {
    fn from(p: StoredParameter) -> Self {
        ParameterRate {
            name: p.name,
            group: p.group,
            shape: p.shape,
            lr: p.lr,
            frozen: match p.frozen_until {
                0 => FrozenUntil::Never,
                e if e > 0 => FrozenUntil::Epoch(e as u32),
                _ => FrozenUntil::Forever,
            },
            init: if p.init == "loaded" {
                ParamInit::Loaded
            } else {
                ParamInit::Fresh
            },
        }
    }
}

impl From<&DataFacts> for StoredFacts {
    fn from(facts: &DataFacts) -> Self {
        let (task, classes, target_variance) = match facts.task {
            TaskFacts::Classification { classes } => (1, classes, None),
            TaskFacts::Regression { target_variance } => (2, 0, target_variance),
        };
        StoredFacts {
            task,
            classes,
            target_variance,
            train_rows: facts.train_rows,
            val_rows: facts.val_rows,
            steps_per_epoch: facts.steps_per_epoch,
            label: facts.label.clone(),
            task_reason: facts.task_reason.clone(),
            leakage: facts.leakage.as_ref().map(StoredLeakage::from),
        }
    }
}

impl From<&Leakage> for StoredLeakage {
    fn from(leakage: &Leakage) -> Self {
        let Leakage {
            val_rows,
            train_rows,
            exact_rows,
            near_rows,
            near_tolerance_std,
            label_columns,
            class_balance_distance,
            dropped_repeats,
            dropped_val_copies,
            findings,
        } = leakage.clone();
        StoredLeakage {
            val_rows,
            train_rows,
            exact_rows,
            near_rows,
            near_tolerance_std,
            label_columns: label_columns.iter().map(StoredLeakyColumn::from).collect(),
            class_balance_distance,
            dropped_repeats,
            dropped_val_copies,
            findings,
        }
    }
}

impl From<&LeakyColumn> for StoredLeakyColumn {
    fn from(column: &LeakyColumn) -> Self {
        let (how, values, correlation) = match column.how {
            ColumnLeak::EqualsLabel => (1, 0, 0.0),
            ColumnLeak::DeterminesClass { values } => (2, values, 0.0),
            ColumnLeak::Correlated { correlation } => (3, 0, correlation),
        };
        StoredLeakyColumn {
            position: column.position,
            name: column.name.clone(),
            how,
            values,
            correlation,
        }
    }
}

impl StoredLeakage {
    fn to_domain(&self) -> DecodeResult<Leakage> {
        let label_columns = self
            .label_columns
            .iter()
            .map(StoredLeakyColumn::to_domain)
            .collect::<DecodeResult<Vec<_>>>()?;
        Ok(Leakage {
            val_rows: self.val_rows,
            train_rows: self.train_rows,
            exact_rows: self.exact_rows,
            near_rows: self.near_rows,
            near_tolerance_std: self.near_tolerance_std,
            label_columns,
            class_balance_distance: self.class_balance_distance,
            dropped_repeats: self.dropped_repeats,
            dropped_val_copies: self.dropped_val_copies,
            findings: self.findings.clone(),
        })
    }
}

impl StoredLeakyColumn {
    fn to_domain(&self) -> DecodeResult<LeakyColumn> {
        let how = match self.how {
            1 => ColumnLeak::EqualsLabel,
            2 => ColumnLeak::DeterminesClass {
                values: self.values,
            },
            3 => ColumnLeak::Correlated {
                correlation: self.correlation,
            },
            other => return Err(format!("unknown column leak {other}")),
        };
        Ok(LeakyColumn {
            position: self.position,
            name: self.name.clone(),
            how,
        })
    }
}

impl StoredFacts {
    fn to_domain(&self) -> DecodeResult<DataFacts> {
        let task = match self.task {
            1 => TaskFacts::Classification {
                classes: self.classes,
            },
            2 => TaskFacts::Regression {
                target_variance: self.target_variance,
            },
            other => return Err(format!("unknown task {other}")),
        };
        Ok(DataFacts {
            task,
            train_rows: self.train_rows,
            val_rows: self.val_rows,
            steps_per_epoch: self.steps_per_epoch,
            label: self.label.clone(),
            task_reason: self.task_reason.clone(),
            leakage: self
                .leakage
                .as_ref()
                .map(StoredLeakage::to_domain)
                .transpose()?,
        })
    }
}

impl From<&RunRecord> for StoredRun {
    fn from(run: &RunRecord) -> Self {
        StoredRun {
            id: run.id.to_string(),
            name: run.name.clone(),
            tags: run.tags.clone(),
            status: status_code(run.status),
            reason: run.reason.clone(),
            config: Some(StoredConfig::from(&run.config)),
            parameters: run.parameters.iter().map(StoredParameter::from).collect(),
            created_at_ms: run.created_at_ms,
            started_at_ms: run.started_at_ms,
            finished_at_ms: run.finished_at_ms,
            val_metric: run.facts.task.metric().label().into(),
            parameter_count: run.parameter_count,
            device: run.device.clone(),
            resumes: run.resumes,
            facts: Some(StoredFacts::from(&run.facts)),
            twin: run.twin.map_or(String::new(), |id| id.to_string()),
            twin_of: run.twin_of.map_or(String::new(), |id| id.to_string()),
            external: match &run.origin {
                RunOrigin::Trained => None,
                RunOrigin::External {
                    hyperparameters,
                    client_key,
                } => Some(StoredExternal {
                    hyperparameters: hyperparameters
                        .iter()
                        .map(|(key, value)| StoredHyperparameter {
                            key: key.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    folder: true,
                    client_key: client_key.clone(),
                }),
            },
            sweep: run.sweep.as_ref().map(StoredSweepTrial::from),
        }
    }
}

impl From<&SweepTrial> for StoredSweepTrial {
    fn from(trial: &SweepTrial) -> Self {
        let SweepTrial {
            sweep_id,
            trial,
            settings,
        } = trial;
        StoredSweepTrial {
            sweep_id: sweep_id.clone(),
            trial: *trial,
            settings: settings
                .iter()
                .map(|(key, value)| StoredHyperparameter {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

impl From<StoredSweepTrial> for SweepTrial {
    fn from(stored: StoredSweepTrial) -> Self {
        let StoredSweepTrial {
            sweep_id,
            trial,
            settings,
        } = stored;
        SweepTrial {
            sweep_id,
            trial,
            settings: settings
                .into_iter()
                .map(|StoredHyperparameter { key, value }| (key, value))
                .collect(),
        }
    }
}

impl StoredRun {
    /// The record as the domain knows it. A format-1 record has no facts: `legacy_facts` says
    /// what to assume (see [`crate::store::upgrade`]).
    pub fn to_domain(
        self,
        legacy_facts: impl FnOnce(&StoredRun) -> DataFacts,
    ) -> DecodeResult<RunRecord> {
        let id: RunId = self
            .id
            .parse()
            .map_err(|_| format!("its id '{}' is not a run id", crate::spec::shown(&self.id)))?;
        let facts = match &self.facts {
            Some(facts) => facts.to_domain()?,
            None => legacy_facts(&self),
        };
        let StoredRun {
            id: _,
            name,
            tags,
            status,
            reason,
            config,
            parameters,
            created_at_ms,
            started_at_ms,
            finished_at_ms,
            val_metric: _,
            parameter_count,
            device,
            resumes,
            facts: _,
            twin,
            twin_of,
            external,
            sweep,
        } = self;
        let linked = |text: String| -> DecodeResult<Option<RunId>> {
            match text.as_str() {
                "" => Ok(None),
                id => id
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("its twin '{}' is not a run id", crate::spec::shown(id))),
            }
        };
        Ok(RunRecord {
            id,
            name,
            tags,
            status: status_of(status)?,
            reason,
            config: config.map(RunConfig::from).unwrap_or_default(),
            parameters: parameters.into_iter().map(ParameterRate::from).collect(),
            created_at_ms,
            started_at_ms,
            finished_at_ms,
            facts,
            parameter_count,
            device,
            resumes,
            twin: linked(twin)?,
            twin_of: linked(twin_of)?,
            origin: match external {
                None => RunOrigin::Trained,
                Some(StoredExternal {
                    hyperparameters,
                    folder: _,
                    client_key,
                }) => RunOrigin::External {
                    hyperparameters: hyperparameters
                        .into_iter()
                        .map(|StoredHyperparameter { key, value }| (key, value))
                        .collect(),
                    client_key,
                },
            },
            sweep: sweep.map(SweepTrial::from),
        })
    }
}

impl From<&EpochMetrics> for StoredEpoch {
    fn from(e: &EpochMetrics) -> Self {
        let EpochMetrics {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups,
            extra,
            no_validation,
        } = e;
        StoredEpoch {
            epoch: *epoch,
            train_loss: *train_loss,
            val_loss: *val_loss,
            val_metric: *val_metric,
            duration_ms: *duration_ms,
            samples_per_sec: *samples_per_sec,
            groups: groups
                .iter()
                .map(|g| StoredGroupStats {
                    name: g.name.clone(),
                    lr: g.lr,
                    grad_norm: g.grad_norm,
                    weight_norm: g.weight_norm,
                    update_ratio: g.update_ratio,
                    frozen: g.frozen,
                })
                .collect(),
            extra: extra
                .iter()
                .map(|(name, value)| StoredScalar {
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
            no_validation: *no_validation,
        }
    }
}

impl From<StoredEpoch> for EpochMetrics {
    fn from(e: StoredEpoch) -> Self {
        let StoredEpoch {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups,
            extra,
            no_validation,
        } = e;
        EpochMetrics {
            epoch,
            train_loss,
            val_loss,
            val_metric,
            duration_ms,
            samples_per_sec,
            groups: groups
                .into_iter()
                .map(|g| GroupStats {
                    name: g.name,
                    lr: g.lr,
                    grad_norm: g.grad_norm,
                    weight_norm: g.weight_norm,
                    update_ratio: g.update_ratio,
                    frozen: g.frozen,
                })
                .collect(),
            extra: extra
                .into_iter()
                .map(|StoredScalar { name, value }| (name, value))
                .collect(),
            no_validation,
        }
    }
}
