//! `strata info --json`.

use serde_json::{json, Value};
use strata_proto::ServerInfo;

/// `strata info` → `{"version","devices","max_concurrent_runs","data_dir","running_runs",
/// "queued_runs","run_id_tag","takes_remote_workers","remote_workers"}`.
pub fn server_info(info: &ServerInfo) -> Value {
    json!({
        "version": info.version,
        "devices": info.devices,
        "max_concurrent_runs": info.max_concurrent_runs,
        "data_dir": info.data_dir,
        "running_runs": info.running_runs,
        "queued_runs": info.queued_runs,
        "run_id_tag": info.run_id_tag,
        "takes_remote_workers": info.takes_remote_workers,
        "remote_workers": info.remote_workers,
    })
}
