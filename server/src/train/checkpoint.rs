//! Per-epoch checkpoints: the model's parameters and the optimizer's state in one safetensors
//! file, `DATA_DIR/runs/ID/epoch-NNNNNN.safetensors`, written to a temporary name and renamed,
//! so a crash leaves either the previous checkpoint or the new one, never half of one. The file is
//! synced before the rename and its folder after it, so once [`write`] returns the checkpoint
//! survives a power cut too (the epoch record that points at it is written only then).

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use tch::{Device, TchError, Tensor};

use super::{data::Standardization, optim::Optimizer};
use crate::{durable, spec::rates::ResolvedParam};

const PREFIX: &str = "epoch-";
const SUFFIX: &str = ".safetensors";
const TMP_FILE: &str = "checkpoint.tmp.safetensors";
const MODEL_PREFIX: &str = "model.";
const DATA_MEAN: &str = "data.mean";
const DATA_STD: &str = "data.std";

pub fn path_for(dir: &Path, epoch: u32) -> PathBuf {
    dir.join(format!("{PREFIX}{epoch:06}{SUFFIX}"))
}

/// The epochs that have a checkpoint in `dir`, ascending.
pub fn epochs_in(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut epochs: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()
        })
        .collect();
    epochs.sort_unstable();
    epochs
}

/// Writes the checkpoint of `epoch`.
pub fn write(
    dir: &Path,
    epoch: u32,
    parameters: &[(String, Tensor)],
    optimizer: &Optimizer,
    standardization: &Standardization,
) -> Result<(), String> {
    create_run_dir(dir)?;
    let mut named: Vec<(String, Tensor)> = parameters
        .iter()
        .map(|(name, t)| {
            Ok((
                format!("{MODEL_PREFIX}{name}"),
                t.f_detach()?.f_to_device(Device::Cpu)?,
            ))
        })
        .collect::<Result<_, TchError>>()
        .map_err(|e| e.to_string())?;
    named.push((DATA_MEAN.into(), standardization.mean.shallow_clone()));
    named.push((DATA_STD.into(), standardization.std.shallow_clone()));
    for (name, t) in optimizer.state_tensors().map_err(|e| e.to_string())? {
        named.push((name, t.f_to_device(Device::Cpu).map_err(|e| e.to_string())?));
    }
    let tmp = dir.join(TMP_FILE);
    Tensor::write_safetensors(&named, &tmp)
        .map_err(|e| format!("cannot write a checkpoint: {e}"))?;
    let failed = |e: std::io::Error| format!("cannot write a checkpoint in {}: {e}", dir.display());
    durable::sync_file(&tmp).map_err(failed)?;
    std::fs::rename(&tmp, path_for(dir, epoch)).map_err(failed)?;
    durable::sync_dir(dir).map_err(failed)
}

/// Creates a run's checkpoint folder if it is missing, and makes its name durable (a synced file
/// in a folder whose own entry was lost would be lost with it).
fn create_run_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let failed = |e: std::io::Error| format!("cannot create {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(failed)?;
    // `runs/ID`: `runs/` may be new too, so sync both the data dir and `runs/`.
    for ancestor in dir.ancestors().skip(1).take(2) {
        durable::sync_dir(ancestor).map_err(failed)?;
    }
    Ok(())
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

/// A checkpoint file read into memory once: its tensors by name.
pub struct Checkpoint {
    named: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self, String> {
        let named = Tensor::read_safetensors(path)
            .map_err(|e| format!("cannot read the checkpoint {}: {e}", path.display()))?
            .into_iter()
            .collect();
        Ok(Checkpoint { named })
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
