//! `strata resume`: continues an interrupted or cancelled run, and watches it with `--follow`.

use strata_client::Fleet;

use crate::cli::ResumeArgs;
use crate::commands::watch::follow;
use crate::commands::{failed_at, locate};
use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;

pub async fn run(
    fleet: &Fleet,
    args: ResumeArgs,
    as_json: bool,
    out: &mut Out,
) -> Result<Exit, CliError> {
    let client = locate(fleet, &args.run).await?;
    let response = client
        .resume_run(&args.run, args.epochs.unwrap_or(0))
        .await
        .map_err(failed_at(client))?;
    let id = response
        .run
        .as_ref()
        .map_or(args.run.clone(), |run| run.id.clone());
    if args.follow {
        return follow(client, &id, 0, as_json, out).await;
    }
    // The reason says where it resumes from (an older checkpoint, if the newest was damaged).
    let reason = response.run.as_ref().map_or("", |run| run.reason.as_str());
    if as_json {
        out.json(&json::resume(&id, reason))?;
    } else if reason.is_empty() {
        out.line(&format!("resumed {id}"))?;
    } else {
        out.line(&format!("resumed {id}: {reason}"))?;
    }
    Ok(Exit::Success)
}
