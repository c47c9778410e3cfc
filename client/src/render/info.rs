//! `strata info`: what the daemon runs on.

use strata_proto::ServerInfo;

use crate::render::table::key_values;

/// `strata info`.
pub fn server_info(info: &ServerInfo) -> String {
    let mut pairs = vec![
        ("version", info.version.clone()),
        (
            "devices",
            if info.devices.is_empty() {
                "-".into()
            } else {
                info.devices.join(", ")
            },
        ),
        ("max concurrent runs", info.max_concurrent_runs.to_string()),
        ("data dir", info.data_dir.clone()),
        (
            "runs",
            format!(
                "{} training, {} queued, {} free slots",
                info.running_runs,
                info.queued_runs,
                strata_client::fleet::free_slots(info).max(0)
            ),
        ),
    ];
    if info.takes_remote_workers {
        pairs.push((
            "remote workers",
            format!("{} connected (strata workers)", info.remote_workers),
        ));
    }
    key_values(&pairs)
}
