//! `strata info`: what the daemon runs on.

use strata_client::Client;

use crate::exit::{CliError, Exit};
use crate::json;
use crate::output::Out;
use crate::render::info::server_info;

pub async fn run(client: &Client, as_json: bool, out: &mut Out) -> Result<Exit, CliError> {
    let info = client.server_info().await?;
    if as_json {
        out.json(&json::server_info(&info))?;
    } else {
        out.line(&server_info(&info))?;
    }
    Ok(Exit::Success)
}
