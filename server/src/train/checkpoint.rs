//! Per-epoch checkpoints: the model's parameters and the optimizer's state in one safetensors
//! file, `DATA_DIR/runs/ID/epoch-NNNNNN.safetensors`, written to a temporary name and renamed,
//! so a crash leaves either the previous checkpoint or the new one, never half of one.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use tch::{Device, TchError, Tensor};

use super::{data::Standardization, optim::Optimizer};
use crate::spec::rates::ResolvedParam;

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
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
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
    std::fs::rename(&tmp, path_for(dir, epoch))
        .map_err(|e| format!("cannot write a checkpoint in {}: {e}", dir.display()))
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

/// Loads the checkpoint of `epoch` into the model's parameters and the optimizer.
pub fn load(
    dir: &Path,
    epoch: u32,
    parameters: &[(String, Tensor)],
    optimizer: &mut Optimizer,
    device: Device,
) -> Result<(), String> {
    let path = path_for(dir, epoch);
    let named: HashMap<String, Tensor> = Tensor::read_safetensors(&path)
        .map_err(|e| {
            format!(
                "cannot read the checkpoint of epoch {epoch} ({}): {e}",
                path.display()
            )
        })?
        .into_iter()
        .collect();
    load_parameters(&named, parameters)?;
    optimizer
        .load_state(&named, device)
        .map_err(|e| format!("checkpoint of epoch {epoch}: {e}"))
}

/// Copies every parameter from `named` (keys `model.NAME`); all must be present with their shapes.
fn load_parameters(
    named: &HashMap<String, Tensor>,
    parameters: &[(String, Tensor)],
) -> Result<(), String> {
    tch::no_grad(|| {
        for (name, tensor) in parameters {
            let saved = named
                .get(&format!("{MODEL_PREFIX}{name}"))
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
    })
}

/// The model parameters stored in a checkpoint, by name (without the `model.` prefix).
fn read_parameters(path: &Path) -> Result<HashMap<String, Tensor>, String> {
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .into_iter()
        .filter_map(|(name, t)| Some((name.strip_prefix(MODEL_PREFIX)?.to_string(), t)))
        .collect())
}

/// The names of `resolved`'s parameters that the checkpoint at `path` has with the same shape.
pub fn matching_parameters(
    path: &Path,
    resolved: &[ResolvedParam],
) -> Result<HashSet<String>, String> {
    let saved = read_parameters(path)?;
    Ok(resolved
        .iter()
        .filter(|p| {
            saved
                .get(&p.info.name)
                .is_some_and(|t| t.size() == p.info.shape)
        })
        .map(|p| p.info.name.clone())
        .collect())
}

/// Copies into the model every parameter the checkpoint has with the same name and shape; the
/// rest keep their fresh initialisation.
pub fn load_matching_parameters(
    path: &Path,
    parameters: &[(String, Tensor)],
) -> Result<(), String> {
    let saved = read_parameters(path)?;
    tch::no_grad(|| {
        for (name, tensor) in parameters {
            if let Some(source) = saved.get(name).filter(|t| t.size() == tensor.size()) {
                tensor
                    .shallow_clone()
                    .f_copy_(source)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

/// The feature statistics a checkpoint's run was standardized with, if it recorded them.
pub fn read_standardization(path: &Path) -> Result<Option<Standardization>, String> {
    let mut named: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .into_iter()
        .filter(|(name, _)| name == DATA_MEAN || name == DATA_STD)
        .collect();
    Ok(match (named.remove(DATA_MEAN), named.remove(DATA_STD)) {
        (Some(mean), Some(std)) => Some(Standardization { mean, std }),
        _ => None,
    })
}
