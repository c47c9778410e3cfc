//! Per-epoch checkpoints: the model's parameters and the optimizer's state in one safetensors
//! file, `DATA_DIR/runs/ID/epoch-NNNNNN.safetensors`, written to a temporary name and renamed,
//! so a crash leaves either the previous checkpoint or the new one, never half of one.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use tch::{Device, TchError, Tensor};

use super::optim::Optimizer;

const PREFIX: &str = "epoch-";
const SUFFIX: &str = ".safetensors";
const TMP_FILE: &str = "checkpoint.tmp.safetensors";
const MODEL_PREFIX: &str = "model.";

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
pub fn read_parameters(path: &Path) -> Result<HashMap<String, Tensor>, String> {
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .into_iter()
        .filter_map(|(name, t)| Some((name.strip_prefix(MODEL_PREFIX)?.to_string(), t)))
        .collect())
}
