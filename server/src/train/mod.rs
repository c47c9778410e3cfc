//! Training: datasets, models, layer-rate resolution against a real model, and the loop.

pub mod checkpoint;
pub mod data;
pub mod model;
pub mod optim;
pub mod worker;

use tch::Device;

use crate::{
    error::{Result, StrataError},
    spec::{
        rates::{resolve_layer_rates, ResolvedParam},
        DeviceSpec, RunSpec,
    },
};

/// The libtorch device for a run, or an error saying which devices exist.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device> {
    let gpus = tch::Cuda::device_count().max(0) as usize;
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto if gpus > 0 => Ok(Device::Cuda(0)),
        DeviceSpec::Auto => Ok(Device::Cpu),
        DeviceSpec::Cuda(n) if n < gpus => Ok(Device::Cuda(n)),
        DeviceSpec::Cuda(n) => Err(StrataError::invalid(
            "device",
            format!(
                "cuda:{n} is not available; this daemon sees {}",
                available_devices().join(", ")
            ),
        )),
    }
}

/// Every device a run can use: `cpu`, then `cuda:N` for each visible GPU.
pub fn available_devices() -> Vec<String> {
    let gpus = tch::Cuda::device_count().max(0);
    std::iter::once("cpu".to_string())
        .chain((0..gpus).map(|n| format!("cuda:{n}")))
        .collect()
}

pub fn device_label(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

/// Resolves the spec's layer rates against the parameters its model really has.
pub fn resolve_run_rates(spec: &RunSpec) -> Result<Vec<ResolvedParam>> {
    let params = model::describe_parameters(
        &spec.model,
        spec.dataset.features(),
        spec.dataset.task().outputs(),
    );
    resolve_layer_rates(&params, &spec.rates)
}
