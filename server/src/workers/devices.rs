//! The devices the daemon's workers can train on, as libtorch sees them (the daemon itself links
//! no libtorch: it asks the worker program once, at start-up), and which GPU a worker is given.

use std::{path::Path, time::Duration};

use crate::{
    error::{Result, StrataError},
    spec::DeviceSpec,
};

/// How long the worker program may take to list the devices (it loads libtorch and, on a GPU
/// host, CUDA).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// A device in the daemon's numbering (`cuda:N` is the N-th GPU the daemon's environment shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// `cpu` or `cuda:N`, as runs record it.
    pub fn label(self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(n) => format!("cuda:{n}"),
        }
    }

    /// The device as a worker given only this one sees it.
    pub fn as_seen_by_worker(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda:0",
        }
    }

    /// `CUDA_VISIBLE_DEVICES` for a worker on this device: none for the CPU (so its worker never
    /// starts CUDA), else this GPU alone — named as the daemon's own `CUDA_VISIBLE_DEVICES`
    /// names it, when that is set.
    pub fn cuda_visible_devices(self, daemons_own: Option<&str>) -> String {
        match self {
            Device::Cpu => String::new(),
            Device::Cuda(n) => daemons_own
                .map(|list| list.split(',').map(str::trim).filter(|d| !d.is_empty()))
                .and_then(|mut list| list.nth(n))
                .map_or_else(|| n.to_string(), str::to_string),
        }
    }
}

/// The devices workers can use: `cpu`, then `cuda:N` for each GPU.
#[derive(Clone, Debug)]
pub struct Devices {
    labels: Vec<String>,
}

impl Devices {
    /// Asks the worker program (`strata-worker devices`) which devices libtorch sees here.
    pub async fn probe(program: &Path) -> Result<Devices> {
        let failed = |why: String| {
            StrataError::invalid(
                "worker",
                format!("the worker program {} {why}", program.display()),
            )
        };
        let mut command = tokio::process::Command::new(program);
        command
            .arg("devices")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(PROBE_TIMEOUT, command.output())
            .await
            .map_err(|_| {
                failed(format!(
                    "did not list the devices within {} s",
                    PROBE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| failed(format!("cannot run: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(failed(format!(
                "failed to list the devices ({}): {}",
                output.status,
                crate::error::truncated(last.trim().to_string(), 400)
            )));
        }
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| failed(format!("listed the devices in a form this stratad cannot read ({e}); are stratad and strata-worker from the same build?")))?;
        let labels: Vec<String> = listed["devices"]
            .as_array()
            .map(|devices| {
                devices
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if labels.first().map(String::as_str) != Some("cpu") {
            return Err(failed(format!("listed no cpu device: {listed}")));
        }
        Ok(Devices { labels })
    }

    /// Only the CPU (for tests of the daemon's own logic).
    pub fn cpu_only() -> Devices {
        Devices {
            labels: vec!["cpu".to_string()],
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    fn gpus(&self) -> usize {
        self.labels.len() - 1
    }

    /// The device a run of this spec trains on, or an error saying which devices exist.
    pub fn resolve(&self, spec: DeviceSpec) -> Result<Device> {
        let gpus = self.gpus();
        match spec {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto if gpus > 0 => Ok(Device::Cuda(0)),
            DeviceSpec::Auto => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) if n < gpus => Ok(Device::Cuda(n)),
            DeviceSpec::Cuda(n) => Err(StrataError::invalid(
                "device",
                format!(
                    "cuda:{n} is not available; this daemon sees {}",
                    self.labels.join(", ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_sees_only_its_own_gpu() {
        assert_eq!(Device::Cpu.cuda_visible_devices(Some("0,1")), "");
        assert_eq!(Device::Cuda(1).cuda_visible_devices(None), "1");
        assert_eq!(Device::Cuda(1).cuda_visible_devices(Some("4, 6")), "6");
        assert_eq!(
            Device::Cuda(0).cuda_visible_devices(Some("GPU-3f2a")),
            "GPU-3f2a"
        );
        assert_eq!(Device::Cuda(1).as_seen_by_worker(), "cuda:0");
        assert_eq!(Device::Cuda(1).label(), "cuda:1");
        let devices = Devices {
            labels: vec!["cpu".into(), "cuda:0".into()],
        };
        assert_eq!(devices.resolve(DeviceSpec::Auto).unwrap(), Device::Cuda(0));
        assert!(devices
            .resolve(DeviceSpec::Cuda(1))
            .unwrap_err()
            .to_string()
            .contains("this daemon sees cpu, cuda:0"));
        assert_eq!(
            Devices::cpu_only().resolve(DeviceSpec::Auto).unwrap(),
            Device::Cpu
        );
    }
}
