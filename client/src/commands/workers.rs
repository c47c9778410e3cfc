//! `strata workers`: the remote workers connected to each daemon.

use serde_json::{json, Value};
use strata_client::fleet::named_at;
use strata_client::Fleet;
use strata_proto::{ListWorkersResponse, WorkerInfo};

use crate::commands::{unreachable_json, with_daemon};
use crate::exit::{CliError, Exit};
use crate::output::{note, Out};
use crate::render::format::{or_dash, utc_time};
use crate::render::table::{Align, Table};

pub async fn run(fleet: &Fleet, as_json: bool, out: &mut Out) -> Result<Exit, CliError> {
    let answers = fleet
        .ask_all(|client| async move { client.list_workers().await })
        .await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if as_json {
        let daemons: Vec<Value> = answers
            .iter()
            .map(|(daemon, answer)| {
                let mut value = with_daemon(fleet, workers_json(answer), Some(&daemon.name));
                value["addr"] = daemon.client.addr().into();
                value
            })
            .collect();
        if fleet.is_several() {
            out.json(&json!({ "daemons": daemons, "unreachable": unreachable_json(fleet) }))?;
        } else if let Some((_, answer)) = answers.first() {
            out.json(&workers_json(answer))?;
        }
        return Ok(Exit::Success);
    }
    let mut blocks = Vec::new();
    for (daemon, answer) in &answers {
        let mut block = String::new();
        if fleet.is_several() {
            block.push_str(&format!(
                "daemon {}\n",
                named_at(&daemon.name, daemon.client.addr())
            ));
        }
        if answer.workers.is_empty() {
            note(&format!(
                "no remote worker is connected to {} (stratad --worker-listen; strata-worker serve)",
                daemon.client.addr()
            ));
            continue;
        }
        block.push_str(&workers_table(&answer.workers, now_ms));
        blocks.push(block);
    }
    if !blocks.is_empty() {
        out.line(&blocks.join("\n\n"))?;
    }
    Ok(Exit::Success)
}

/// The table: one worker a row.
fn workers_table(workers: &[WorkerInfo], now_ms: i64) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("LABELS", Align::Left),
        ("DEVICES", Align::Left),
        ("MEMORY", Align::Right),
        ("RUN", Align::Left),
        ("DONE", Align::Right),
        ("HEARD", Align::Right),
        ("HOST", Align::Left),
        ("CONNECTED", Align::Left),
    ]);
    for worker in workers {
        let run = if worker.run_id.is_empty() {
            "idle".to_string()
        } else {
            format!("{} on {}", worker.run_id, worker.device)
        };
        table.row(vec![
            worker.name.clone(),
            or_dash(&worker.labels.join(",")),
            worker.devices.join(","),
            memory(worker.memory_bytes),
            run,
            worker.runs_done.to_string(),
            format!(
                "{:.0} s ago",
                ((now_ms - worker.last_heartbeat_ms).max(0) as f64) / 1000.0
            ),
            format!("{} (pid {})", or_dash(&worker.host), worker.pid),
            utc_time(worker.connected_at_ms),
        ]);
    }
    table.render_plain()
}

fn memory(bytes: u64) -> String {
    if bytes == 0 {
        return "-".into();
    }
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// `{"workers":[...],"heartbeat_timeout_s","worker_retries"}`.
fn workers_json(answer: &ListWorkersResponse) -> Value {
    json!({
        "workers": answer.workers.iter().map(worker_json).collect::<Vec<_>>(),
        "heartbeat_timeout_s": answer.heartbeat_timeout_s,
        "worker_retries": answer.worker_retries,
    })
}

fn worker_json(worker: &WorkerInfo) -> Value {
    json!({
        "name": worker.name,
        "labels": worker.labels,
        "devices": worker.devices,
        "memory_bytes": worker.memory_bytes,
        "data_roots": worker.data_roots,
        "allow_torchscript": worker.allow_torchscript,
        "threads": worker.threads,
        "address": worker.address,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "connected_at_ms": worker.connected_at_ms,
        "last_heartbeat_ms": worker.last_heartbeat_ms,
        "run_id": worker.run_id,
        "device": worker.device,
        "runs_done": worker.runs_done,
    })
}
