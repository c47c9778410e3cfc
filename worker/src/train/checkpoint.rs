//! A run's training state as a checkpoint: the model's parameters, the optimizer's state and the
//! data's scaling, with the run's records, in the daemon's checkpoint file format
//! ([`strata_server::train::checkpoint::file`]); and a checkpoint read back into tensors to resume
//! or fine-tune from. The worker never writes a checkpoint to the disk: it sends the file's bytes
//! to the daemon, which stores them (and sends them back to the worker a run resumes in).

use std::{borrow::Cow, collections::HashMap};

use safetensors::tensor::Dtype;
use strata_server::train::checkpoint::file::{
    self, Checksum, TensorData, EPOCHS_TENSOR, MODEL_PREFIX, RUN_TENSOR,
};
use tch::{Device, Kind, TchError, Tensor};

use super::{dataset::Standardization, optim::Optimizer, targets::TargetScaling};

const DATA_MEAN: &str = "data.mean";
const DATA_STD: &str = "data.std";
/// A regression's target statistics (see [`super::targets`]), one double each.
const TARGET_MEAN: &str = "data.target_mean";
const TARGET_STD: &str = "data.target_std";
/// Tensors whose names start with this are Strata's own records, not training state.
const RECORDS_PREFIX: &str = "strata.";

/// What a checkpoint carries besides training state, already encoded: the run's record (the
/// store's `StoredRun`, as the daemon sent it) and the record of the checkpoint's own epoch (a
/// length-delimited `StoredEpoch`; the earlier ones are in the run's epoch log).
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

/// The checkpoint file of `epoch`, as bytes.
pub fn encode(
    run_id: &str,
    epoch: u32,
    parameters: &[(String, Tensor)],
    optimizer: &Optimizer,
    scaling: DataScaling<'_>,
    records: &RunRecords,
) -> Result<Vec<u8>, String> {
    let DataScaling {
        features: standardization,
        targets,
    } = scaling;
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
    file::encode(run_id, epoch, &named).map_err(|e| format!("cannot write a checkpoint: {e}"))
}

/// A checkpoint file read into memory once, verified: its tensors by name.
pub struct Checkpoint {
    named: HashMap<String, Tensor>,
    /// Whether its checksum was verified, or it predates checksums.
    pub checksum: Checksum,
}

impl Checkpoint {
    /// Parses and verifies a checkpoint's bytes; the error says what is wrong with it.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        let unusable = |why: String| format!("the checkpoint it starts from is unusable: {why}");
        let file = file::CheckpointFile::from_bytes(bytes).map_err(unusable)?;
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
