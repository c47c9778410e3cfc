//! A user's TorchScript module: loaded with its parameters under their own names, switched between
//! training and evaluation mode, and checked against the dataset's shape.

use std::path::Path;

use tch::{CModule, Device, Kind, TchError, Tensor};

use super::{invalid, Model};
use strata_server::error::Result;

/// Largest TorchScript file loaded.
const MAX_TORCHSCRIPT_BYTES: u64 = 2 << 30;

pub(super) struct ScriptModule {
    module: CModule,
    /// The mode the module is in: `Some(true)` training, `Some(false)` evaluation.
    training: Option<bool>,
}

/// libtorch's messages carry a C++ backtrace; the first line is the one a user can act on.
fn first_line(err: &TchError) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl ScriptModule {
    /// Loads a TorchScript module and takes its parameters under their own names. Unlike tch's
    /// `TrainableCModule`, which puts them all in one optimizer group, the parameters are handed
    /// to the optimizer one by one, so each gets its own rate.
    pub(super) fn load(path: &Path, device: Device) -> Result<(Self, Vec<(String, Tensor)>)> {
        // A regular file of bounded size; libtorch reads it only after this check.
        strata_server::spec::paths::open_regular(path, MAX_TORCHSCRIPT_BYTES).map_err(|e| {
            invalid(format!(
                "cannot read the TorchScript module {} (it is read on the daemon's host): {e}",
                path.display()
            ))
        })?;
        let module = CModule::load_on_device(path, device).map_err(|e| {
            invalid(format!(
                "cannot load {} as a TorchScript module (save it with torch.jit.script(model).save(path)): {}",
                path.display(),
                first_line(&e)
            ))
        })?;
        let parameters = module
            .named_parameters()
            .map_err(|e| invalid(format!("{}: {}", path.display(), first_line(&e))))?;
        if parameters.is_empty() {
            return Err(invalid(format!(
                "the TorchScript module at {} has no parameters to train",
                path.display()
            )));
        }
        for (name, tensor) in &parameters {
            if tensor.kind() != Kind::Float {
                return Err(invalid(format!(
                    "{}: parameter {name} is {:?}; Strata trains float32 parameters (call .float() on the module before scripting it)",
                    path.display(),
                    tensor.kind()
                )));
            }
            // Frozen parameters are switched off per epoch by the training loop.
            let _ = tensor
                .f_set_requires_grad(true)
                .map_err(|e| invalid(first_line(&e)))?;
        }
        Ok((
            ScriptModule {
                module,
                training: None,
            },
            parameters,
        ))
    }

    /// The module's output for a batch, in training mode when `train` (evaluation otherwise).
    pub(super) fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor, TchError> {
        if self.training != Some(train) {
            if train {
                self.module.f_set_train()?;
            } else {
                self.module.f_set_eval()?;
            }
            self.training = Some(train);
        }
        self.module.forward_ts(&[x])
    }
}

/// Runs `model` (the module at `path`) once on a batch of zeros shaped like `sample`s, checking it
/// maps them to `[batch, outputs]`.
pub(super) fn check_output(model: &Model, path: &Path, sample: &[i64], outputs: i64) -> Result<()> {
    const PROBE_BATCH: i64 = 2;
    let shape: Vec<i64> = std::iter::once(PROBE_BATCH)
        .chain(sample.iter().copied())
        .collect();
    let output = tch::no_grad(|| {
        let x = Tensor::f_zeros(shape.as_slice(), (Kind::Float, Device::Cpu))?;
        model.forward(&x, false)
    })
    .map_err(|e| {
        invalid(format!(
            "{} fails on a batch of shape {shape:?} (this dataset's samples are {sample:?}): {}",
            path.display(),
            first_line(&e)
        ))
    })?;
    let expected = vec![PROBE_BATCH, outputs];
    if output.size() != expected {
        return Err(invalid(format!(
            "{} maps a batch of shape {shape:?} to {:?}; this dataset needs {expected:?} ({})",
            path.display(),
            output.size(),
            if outputs == 1 {
                "one regression output".to_string()
            } else {
                format!("one logit per class, {outputs} classes")
            }
        )));
    }
    Ok(())
}
