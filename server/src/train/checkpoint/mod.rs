//! Per-epoch checkpoints: the model's parameters and the optimizer's state in one safetensors
//! file, `DATA_DIR/runs/ID/epoch-NNNNNN.safetensors`, written to a temporary name and renamed,
//! so a crash leaves either the previous checkpoint or the new one, never half of one. The file is
//! synced before the rename and its folder after it, so once [`write`] returns the checkpoint
//! survives a power cut too (the epoch record that points at it is written only then).
//!
//! Each file carries a checksum, verified whenever it is read, the run's record and its own epoch's
//! record; with the run's epoch log ([`crate::store::epoch_log`]) a run folder alone is enough to rebuild the run
//! ([`file`] says how and why).

pub mod file;

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    path::Path,
};

use safetensors::tensor::Dtype;
use tch::{Device, Kind, TchError, Tensor};

pub use self::file::{epochs_in, path_for, Checksum};
use self::file::{TensorData, EPOCHS_TENSOR, RUN_TENSOR, TMP_FILE};
use super::{data::Standardization, optim::Optimizer, targets::TargetScaling};
use crate::{durable, spec::rates::ResolvedParam};

const MODEL_PREFIX: &str = "model.";
const DATA_MEAN: &str = "data.mean";
const DATA_STD: &str = "data.std";
/// A regression's target statistics (see [`super::targets`]), one double each.
const TARGET_MEAN: &str = "data.target_mean";
const TARGET_STD: &str = "data.target_std";
/// Tensors whose names start with this are Strata's own records, not training state.
const RECORDS_PREFIX: &str = "strata.";

/// What a checkpoint carries besides training state, already encoded: the run's record ([`crate::store::record`]
/// `StoredRun`) and the record of the checkpoint's own epoch (a length-delimited `StoredEpoch`;
/// the earlier ones are in the run's epoch log).
#[derive(Default)]
pub struct RunRecords {
    pub run: Vec<u8>,
    pub epochs: Vec<u8>,
}

fn tensor_data(name: String, tensor: &Tensor) -> Result<TensorData<'static>, TchError> {
    let tensor = tensor
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?;
    let dtype = Dtype::try_from(tensor.kind())?;
    let numel = tensor.numel();
    let mut data = vec![0u8; numel * tensor.kind().elt_size_in_bytes()];
    tensor.f_copy_data_u8(&mut data, numel)?;
    Ok(TensorData {
        name,
        dtype,
        shape: tensor.size().iter().map(|&d| d as usize).collect(),
        data: Cow::Owned(data),
    })
}

fn bytes_tensor<'a>(name: &str, bytes: &'a [u8]) -> TensorData<'a> {
    TensorData {
        name: name.to_string(),
        dtype: Dtype::U8,
        shape: vec![bytes.len()],
        data: Cow::Borrowed(bytes),
    }
}

/// How the data was rescaled for training: what a resumed run must rescale it with again.
pub struct DataScaling<'a> {
    pub features: &'a Standardization,
    /// A regression's target scaling; `None` for a classifier.
    pub targets: Option<TargetScaling>,
}

/// Writes the checkpoint of `epoch`.
pub fn write(
    dir: &Path,
    run_id: &str,
    epoch: u32,
    parameters: &[(String, Tensor)],
    optimizer: &Optimizer,
    scaling: DataScaling<'_>,
    records: &RunRecords,
) -> Result<(), String> {
    let DataScaling {
        features: standardization,
        targets,
    } = scaling;
    durable::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut named: Vec<TensorData<'_>> = Vec::new();
    let mut add = |name: String, tensor: &Tensor| -> Result<(), TchError> {
        named.push(tensor_data(name, tensor)?);
        Ok(())
    };
    let state = (|| {
        for (name, tensor) in parameters {
            add(format!("{MODEL_PREFIX}{name}"), tensor)?;
        }
        add(DATA_MEAN.into(), &standardization.mean)?;
        add(DATA_STD.into(), &standardization.std)?;
        // Always for a regression (identity included), so that its absence means "written
        // before targets were scaled" (see TargetScaling::choose).
        if let Some(targets) = targets {
            add(TARGET_MEAN.into(), &Tensor::f_from_slice(&[targets.mean])?)?;
            add(TARGET_STD.into(), &Tensor::f_from_slice(&[targets.std])?)?;
        }
        for (name, tensor) in optimizer.state_tensors()? {
            add(name, &tensor)?;
        }
        Ok::<_, TchError>(())
    })();
    state.map_err(|e| format!("cannot write a checkpoint: {e}"))?;
    named.push(bytes_tensor(RUN_TENSOR, &records.run));
    named.push(bytes_tensor(EPOCHS_TENSOR, &records.epochs));
    let tmp = dir.join(TMP_FILE);
    let failed = |e: std::io::Error| format!("cannot write a checkpoint in {}: {e}", dir.display());
    file::write(&tmp, run_id, epoch, &named).map_err(failed)?;
    durable::sync_file(&tmp).map_err(failed)?;
    std::fs::rename(&tmp, path_for(dir, epoch)).map_err(failed)?;
    durable::sync_dir(dir).map_err(failed)
}

/// Deletes all but the newest `keep` checkpoints.
pub fn prune(dir: &Path, keep: usize) {
    let epochs = epochs_in(dir);
    for &epoch in epochs.iter().take(epochs.len().saturating_sub(keep.max(1))) {
        if let Err(err) = std::fs::remove_file(path_for(dir, epoch)) {
            tracing::warn!(dir = %dir.display(), epoch, error = %err, "could not prune a checkpoint");
        }
    }
}

/// A checkpoint file read into memory once, verified: its tensors by name.
pub struct Checkpoint {
    named: HashMap<String, Tensor>,
    /// Whether its checksum was verified, or it predates checksums.
    pub checksum: Checksum,
}

impl Checkpoint {
    /// Reads and verifies a checkpoint; the error names the file and says what is wrong with it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let unusable =
            |why: String| format!("the checkpoint {} is unusable: {why}", path.display());
        let file = file::CheckpointFile::read(path).map_err(unusable)?;
        let named = file
            .tensors()
            .into_iter()
            .filter(|(name, ..)| !name.starts_with(RECORDS_PREFIX))
            .map(|(name, dtype, shape, data)| {
                let kind = Kind::try_from(dtype)?;
                let size: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                Ok((name, Tensor::f_from_data_size(data, &size, kind)?))
            })
            .collect::<Result<_, TchError>>()
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Checkpoint {
            named,
            checksum: file.checksum,
        })
    }

    fn parameter(&self, name: &str) -> Option<&Tensor> {
        self.named.get(&format!("{MODEL_PREFIX}{name}"))
    }

    /// The feature statistics its run was standardized with, if it recorded them.
    pub fn standardization(&self) -> Option<Standardization> {
        match (self.named.get(DATA_MEAN), self.named.get(DATA_STD)) {
            (Some(mean), Some(std)) => Some(Standardization {
                mean: mean.shallow_clone(),
                std: std.shallow_clone(),
            }),
            _ => None,
        }
    }

    /// The target statistics a regression run was trained with, if it recorded them.
    pub fn target_scaling(&self) -> Option<TargetScaling> {
        let value = |name: &str| self.named.get(name)?.f_double_value(&[0]).ok();
        Some(TargetScaling {
            mean: value(TARGET_MEAN)?,
            std: value(TARGET_STD)?,
        })
    }

    /// Restores a run exactly: every parameter (all must be present with their shapes) and the
    /// optimizer's state.
    pub fn restore(
        &self,
        parameters: &[(String, Tensor)],
        optimizer: &mut Optimizer,
        device: Device,
    ) -> Result<(), String> {
        tch::no_grad(|| {
            for (name, tensor) in parameters {
                let saved = self
                    .parameter(name)
                    .ok_or_else(|| format!("the checkpoint has no parameter {name}"))?;
                if saved.size() != tensor.size() {
                    return Err(format!(
                        "the checkpoint's {name} has shape {:?}, the model's {:?}",
                        saved.size(),
                        tensor.size()
                    ));
                }
                tensor
                    .shallow_clone()
                    .f_copy_(saved)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        optimizer
            .load_state(&self.named, device)
            .map_err(|e| format!("the checkpoint's optimizer state: {e}"))
    }

    /// The names of `resolved`'s parameters this checkpoint has with the same shape.
    pub fn matching_parameters(&self, resolved: &[ResolvedParam]) -> HashSet<String> {
        resolved
            .iter()
            .filter(|p| {
                self.parameter(&p.info.name)
                    .is_some_and(|t| t.size() == p.info.shape)
            })
            .map(|p| p.info.name.clone())
            .collect()
    }

    /// Copies into the model every parameter this checkpoint has with the same name and shape;
    /// the rest keep their fresh initialisation.
    pub fn load_matching(&self, parameters: &[(String, Tensor)]) -> Result<(), String> {
        tch::no_grad(|| {
            for (name, tensor) in parameters {
                if let Some(source) = self.parameter(name).filter(|t| t.size() == tensor.size()) {
                    tensor
                        .shallow_clone()
                        .f_copy_(source)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        })
    }
}
