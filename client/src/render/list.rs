//! `strata list`: one line per run.

use strata_client::status_label;
use strata_proto::Run;

use crate::render::format::{epochs_done_of_total, or_dash, utc_time};
use crate::render::table::{Align, Table};

/// `strata list`: one line per run, in the order given (newest first), with the daemon each is
/// on when `daemons` (one name per run) is given.
pub fn list_table(runs: &[Run], daemons: Option<&[String]>) -> String {
    let mut columns = vec![("ID", Align::Left)];
    if daemons.is_some() {
        columns.push(("DAEMON", Align::Left));
    }
    columns.extend([
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("EPOCHS", Align::Right),
        ("MODEL", Align::Left),
        ("DATASET", Align::Left),
        ("CREATED", Align::Left),
    ]);
    let mut table = Table::new(&columns);
    for (i, run) in runs.iter().enumerate() {
        let config = run.config.as_ref();
        let mut row = vec![run.id.clone()];
        if let Some(daemons) = daemons {
            row.push(daemons.get(i).cloned().unwrap_or_default());
        }
        row.extend([
            or_dash(&run.name),
            match (run.queue_position, run.external) {
                (_, true) => format!("{} (external)", status_label(run.status)),
                (0, false) => status_label(run.status).into_owned(),
                (position, false) => format!("{} #{position}", status_label(run.status)),
            },
            epochs_done_of_total(run),
            or_dash(config.map_or("", |c| c.model.as_str())),
            or_dash(config.map_or("", |c| c.dataset.as_str())),
            utc_time(run.created_at_ms),
        ]);
        table.row(row);
    }
    table.render_plain()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::{RunConfig, RunStatus};

    #[test]
    fn list_table_shows_progress_and_time() {
        let run = Run {
            id: "0123456789abcdef".into(),
            status: RunStatus::Running as i32,
            epochs_done: 3,
            created_at_ms: 1_700_000_000_000,
            config: Some(RunConfig {
                dataset: "spirals".into(),
                model: "mlp:64,64".into(),
                epochs: Some(10),
                ..RunConfig::default()
            }),
            ..Run::default()
        };
        let table = list_table(std::slice::from_ref(&run), None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "ID                NAME  STATUS   EPOCHS  MODEL      DATASET  CREATED"
        );
        assert_eq!(
            lines[1],
            "0123456789abcdef  -     running    3/10  mlp:64,64  spirals  2023-11-14 22:13:20"
        );
        let table = list_table(&[run], Some(&["gpu1".to_string()]));
        assert!(
            table.starts_with("ID                DAEMON  NAME")
                && table.contains("abcdef  gpu1    -"),
            "{table}"
        );
    }
}
