//! `strata info`: what each daemon runs on.

use serde_json::{json, Value};
use strata_client::fleet::{free_slots, named_at};
use strata_client::Fleet;

use crate::commands::{unreachable_json, with_daemon};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::{note, Out};
use crate::render::info::server_info;

pub async fn run(fleet: &Fleet, as_json: bool, out: &mut Out) -> Result<Exit, CliError> {
    let infos = fleet.server_infos().await?;
    if !fleet.is_several() {
        // One daemon: as `strata info` has always answered.
        if let Some((_, info)) = infos.first() {
            if as_json {
                out.json(&json::server_info(info))?;
            } else {
                out.line(&server_info(info))?;
            }
        }
        return Ok(Exit::Success);
    }
    warn_about_shared_tags(&infos);
    if as_json {
        let daemons: Vec<Value> = infos
            .iter()
            .map(|(daemon, info)| {
                let mut value = with_daemon(fleet, json::server_info(info), Some(&daemon.name));
                value["addr"] = daemon.client.addr().into();
                value["free_slots"] = free_slots(info).into();
                value
            })
            .collect();
        out.json(&json!({ "daemons": daemons, "unreachable": unreachable_json(fleet) }))?;
    } else {
        let blocks: Vec<String> = infos
            .iter()
            .map(|(daemon, info)| {
                format!(
                    "daemon {}\n{}",
                    named_at(&daemon.name, daemon.client.addr()),
                    server_info(info),
                )
            })
            .collect();
        out.line(&blocks.join("\n\n"))?;
    }
    Ok(Exit::Success)
}

/// Two daemons with the same run id tag could make the same run id (see `RunId` in stratad).
fn warn_about_shared_tags(infos: &[(&strata_client::fleet::Daemon, strata_proto::ServerInfo)]) {
    for (i, (first, a)) in infos.iter().enumerate() {
        for (second, b) in &infos[i + 1..] {
            if a.run_id_tag == b.run_id_tag {
                note(&format!(
                    "warning: daemons {} and {} share run id tag {}: their run ids could clash; give one of them a fresh data dir",
                    first.name, second.name, a.run_id_tag
                ));
            }
        }
    }
}
