//! Training with libtorch: the datasets as tensors, the models, the optimizers, checkpoints of
//! their state, the loop of one run ([`run`]) and the learning-rate range test ([`lr_find`]).
//! Nothing here knows the daemon: a run reports through a [`run::RunSink`].

pub mod checkpoint;
pub mod dataset;
pub mod lr_find;
pub mod model;
pub mod optim;
pub mod run;
pub mod targets;
pub mod threads;

use strata_server::error::{Result, StrataError};
use tch::Device;

/// Every device libtorch sees here: `cpu`, then `cuda:N` for each visible GPU.
pub fn available_devices() -> Vec<String> {
    let gpus = tch::Cuda::device_count().max(0);
    std::iter::once("cpu".to_string())
        .chain((0..gpus).map(|n| format!("cuda:{n}")))
        .collect()
}

/// The libtorch device a job names (`cpu`, `cuda:N`), if this worker has it.
pub fn device(label: &str) -> Result<Device> {
    let unavailable = || {
        StrataError::invalid(
            "device",
            format!(
                "{label} is not available to this worker; it sees {}",
                available_devices().join(", ")
            ),
        )
    };
    match label {
        "cpu" => Ok(Device::Cpu),
        other => {
            let n: usize = other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(unavailable)?;
            if n < tch::Cuda::device_count().max(0) as usize {
                Ok(Device::Cuda(n))
            } else {
                Err(unavailable())
            }
        }
    }
}
