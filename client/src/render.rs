//! Human-readable output of the CLI: tables, the run summary and the live epoch line.
//!
//! Every function returns text without a trailing newline; the caller decides where it goes.
//! Analysis (verdicts, diagnoses) is the daemon's job; this module only lays out numbers.

use strata_client::{epoch_gap, status_label};
use strata_proto::{EpochRecord, GetRunResponse, ParameterRate, Run, RunConfig, ServerInfo};

/// How a column's cells line up. Numbers are right-aligned so their digits line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A text table: a header row and rows of cells, padded to the widest cell of each column.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Table {
        let columns = columns
            .iter()
            .map(|(name, align)| (name.to_string(), *align))
            .collect();
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.rows.push(cells);
    }

    fn widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .map(|row| text_width(&row[i]))
                    .chain([text_width(name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn format_row(&self, cells: &[String], widths: &[usize], separator: &str) -> String {
        let mut line = String::new();
        for (i, (cell, (_, align))) in cells.iter().zip(&self.columns).enumerate() {
            if i > 0 {
                line.push_str(separator);
            }
            let pad = " ".repeat(widths[i].saturating_sub(text_width(cell)));
            match align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        line.trim_end().to_string()
    }

    /// Columns separated by two spaces, like `docker ps`: easy to read and to `awk`.
    pub fn render_plain(&self) -> String {
        let widths = self.widths();
        let header: Vec<String> = self.columns.iter().map(|(name, _)| name.clone()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| self.format_row(row, &widths, "  "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Columns separated by ` | ` with a rule under the header, like the seed's epoch table.
    pub fn render_ruled(&self) -> String {
        let widths = self.widths();
        let header: Vec<String> = self.columns.iter().map(|(name, _)| name.clone()).collect();
        let rule = widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-");
        let mut lines = vec![self.format_row(&header, &widths, " | "), rule];
        lines.extend(
            self.rows
                .iter()
                .map(|row| self.format_row(row, &widths, " | ")),
        );
        lines.join("\n")
    }
}

/// Display width of a cell. Counting chars is right for everything the daemon sends (ASCII ids,
/// specs, numbers) and close enough for user-chosen names.
fn text_width(text: &str) -> usize {
    text.chars().count()
}

/// A loss or similar metric: 6 decimals, or scientific notation when that would hide the value
/// (tiny or huge losses); `NaN`/`inf` spelled out, since a diverged run has them.
pub fn metric(value: f64) -> String {
    format_metric(value, false)
}

/// Like [`metric`] with an explicit sign, for gaps (`+0.022222`, `-0.001000`).
pub fn signed_metric(value: f64) -> String {
    format_metric(value, true)
}

fn format_metric(value: f64, signed: bool) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            if signed {
                "+inf"
            } else {
                "inf"
            }
        } else {
            "-inf"
        }
        .into();
    }
    let magnitude = value.abs();
    let scientific = magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude);
    match (scientific, signed) {
        (true, true) => format!("{value:+.4e}"),
        (true, false) => format!("{value:.4e}"),
        (false, true) => format!("{value:+.6}"),
        (false, false) => format!("{value:.6}"),
    }
}

/// A learning rate the way users type them: `1e-3`, `3.162e-5`, `0`.
pub fn rate(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    if !value.is_finite() {
        return metric(value);
    }
    let formatted = format!("{value:.3e}");
    match formatted.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.trim_end_matches('0').trim_end_matches('.')
            } else {
                mantissa
            };
            format!("{mantissa}e{exponent}")
        }
        None => formatted,
    }
}

/// A plain config number (`0.2`, `0.65`): Rust's shortest round-trip form.
fn plain_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        metric(value)
    }
}

/// A parameter's freeze state from `ParameterRate.frozen_until`.
pub fn frozen(frozen_until: i32) -> String {
    match frozen_until {
        0 => "no".into(),
        n if n < 0 => "yes".into(),
        n => format!("until epoch {n}"),
    }
}

/// A tensor shape: `[64, 2]`.
pub fn shape(dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM:SS`; `-` for 0 (not yet).
pub fn utc_time(unix_ms: i64) -> String {
    if unix_ms == 0 {
        return "-".into();
    }
    let secs = unix_ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, which avoids a date-time dependency for one conversion.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in milliseconds, short: `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".into();
    }
    if ms < 1000.0 {
        return format!("{ms:.0}ms");
    }
    let secs = ms / 1000.0;
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = secs.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

/// The seed's table, `Epoch | Training Loss | Validation Loss | Gap`, then the validation metric
/// (`Val Accuracy`, or `Val R²` for regression).
pub fn epoch_table(epochs: &[EpochRecord], val_metric: &str) -> String {
    if epochs.is_empty() {
        return "no epochs yet".into();
    }
    let mut table = Table::new(&[
        ("Epoch", Align::Right),
        ("Training Loss", Align::Right),
        ("Validation Loss", Align::Right),
        ("Gap", Align::Right),
        (metric_heading(val_metric), Align::Right),
    ]);
    for epoch in epochs {
        table.row(vec![
            epoch.epoch.to_string(),
            metric(epoch.train_loss),
            metric(epoch.val_loss),
            signed_metric(epoch_gap(epoch)),
            validation_metric(epoch.val_accuracy),
        ]);
    }
    table.render_ruled()
}

/// The validation metric's column heading in the epoch table.
fn metric_heading(val_metric: &str) -> &'static str {
    match val_metric {
        "r2" => "Val R²",
        _ => "Val Accuracy",
    }
}

/// A validation metric (accuracy or R²) to four decimals, `NaN` as such.
fn validation_metric(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        metric(value)
    }
}

/// Parameters by group, in the order the daemon lists them (the model's order).
fn by_group(parameters: &[ParameterRate]) -> Vec<(&str, Vec<&ParameterRate>)> {
    let mut groups: Vec<(&str, Vec<&ParameterRate>)> = Vec::new();
    for parameter in parameters {
        match groups.iter_mut().find(|(name, _)| *name == parameter.group) {
            Some((_, members)) => members.push(parameter),
            None => groups.push((&parameter.group, vec![parameter])),
        }
    }
    groups
}

/// A parameter's name without its group prefix (`layer0.weight` in `layer0` → `weight`).
fn short_name(parameter: &ParameterRate) -> &str {
    parameter
        .name
        .strip_prefix(parameter.group.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(&parameter.name)
}

/// The per-group learning-rate table: one line per group when all its parameters share a rate
/// and freeze state (the usual case), else one line per parameter, so a rule that split a group
/// is visible.
pub fn rate_table(parameters: &[ParameterRate]) -> String {
    /// Beyond this many parameters, a uniform group names a count instead of every parameter.
    const MAX_LISTED: usize = 4;

    if parameters.is_empty() {
        return "no parameters resolved".into();
    }
    let mut table = Table::new(&[
        ("GROUP", Align::Left),
        ("PARAMETERS", Align::Left),
        ("LR", Align::Right),
        ("FROZEN", Align::Left),
    ]);
    for (group, members) in by_group(parameters) {
        let first = members[0];
        let uniform = members
            .iter()
            .all(|p| p.lr.to_bits() == first.lr.to_bits() && p.frozen_until == first.frozen_until);
        if uniform {
            let names = if members.len() > MAX_LISTED {
                format!("{} parameters", members.len())
            } else {
                members
                    .iter()
                    .map(|p| short_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            table.row(vec![
                group.to_string(),
                names,
                rate(first.lr),
                frozen(first.frozen_until),
            ]);
        } else {
            for (i, parameter) in members.iter().enumerate() {
                let group_cell = if i == 0 {
                    group.to_string()
                } else {
                    String::new()
                };
                table.row(vec![
                    group_cell,
                    short_name(parameter).to_string(),
                    rate(parameter.lr),
                    frozen(parameter.frozen_until),
                ]);
            }
        }
    }
    table.render_plain()
}

/// Every parameter with its resolved rate, for `strata start --dry-run`.
pub fn parameter_table(parameters: &[ParameterRate]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("GROUP", Align::Left),
        ("SHAPE", Align::Left),
        ("LR", Align::Right),
        ("FROZEN", Align::Left),
        ("INIT", Align::Left),
    ]);
    for parameter in parameters {
        table.row(vec![
            parameter.name.clone(),
            parameter.group.clone(),
            shape(&parameter.shape),
            rate(parameter.lr),
            frozen(parameter.frozen_until),
            parameter.init.clone(),
        ]);
    }
    table.render_plain()
}

/// `label value` lines with the values lined up.
fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(key, _)| text_width(key))
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `status` or `status: reason`.
fn status_with_reason(status: i32, reason: &str) -> String {
    if reason.is_empty() {
        status_label(status).into_owned()
    } else {
        format!("{}: {reason}", status_label(status))
    }
}

/// `main  (a, b, c)` with only the details that are set; `main` alone when none are.
fn with_details(main: &str, details: Vec<String>) -> String {
    let main = if main.is_empty() { "-" } else { main };
    if details.is_empty() {
        main.to_string()
    } else {
        format!("{main}  ({})", details.join(", "))
    }
}

/// The learning-rate spec as the user gave it: base rate, rules, decay, slice, schedule.
fn rate_spec(config: &RunConfig) -> String {
    let mut parts = Vec::new();
    if let Some(lr) = config.lr {
        parts.push(format!("lr {}", rate(lr)));
    }
    if !config.layer_lr.is_empty() {
        parts.push(format!("layer-lr {}", config.layer_lr.join(" ")));
    }
    if !config.freeze.is_empty() {
        parts.push(format!("freeze {}", config.freeze.join(" ")));
    }
    if let Some(decay) = config.lr_decay {
        parts.push(format!("lr-decay {}", plain_number(decay)));
    }
    if !config.lr_slice.is_empty() {
        parts.push(format!("lr-slice {}", config.lr_slice));
    }
    if !config.schedule.is_empty() {
        parts.push(format!("schedule {}", config.schedule));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// The run summary at the top of `strata show`.
pub fn run_header(run: &Run) -> String {
    let default_config = RunConfig::default();
    let config = run.config.as_ref().unwrap_or(&default_config);

    let mut pairs: Vec<(&str, String)> = Vec::new();
    pairs.push((
        "Run",
        if run.name.is_empty() {
            run.id.clone()
        } else {
            format!("{}  {}", run.id, run.name)
        },
    ));
    if !run.tags.is_empty() {
        pairs.push(("Tags", run.tags.join(", ")));
    }
    pairs.push(("Status", status_with_reason(run.status, &run.reason)));

    let mut dataset = Vec::new();
    if let Some(samples) = config.samples {
        dataset.push(format!("{samples} samples"));
    }
    if let Some(noise) = config.noise {
        dataset.push(format!("noise {}", plain_number(noise)));
    }
    if let Some(classes) = config.classes {
        dataset.push(format!("{classes} classes"));
    }
    if !config.label.is_empty() {
        dataset.push(format!("label {}", config.label));
    }
    if !config.task.is_empty() {
        dataset.push(config.task.clone());
    }
    if let Some(fraction) = config.val_fraction {
        dataset.push(format!("val fraction {}", plain_number(fraction)));
    }
    if !config.val_dataset.is_empty() {
        dataset.push(format!("validation {}", config.val_dataset));
    }
    pairs.push(("Dataset", with_details(&config.dataset, dataset)));

    let model = if run.parameter_count > 0 {
        vec![format!("{} parameters", run.parameter_count)]
    } else {
        vec![]
    };
    pairs.push(("Model", with_details(&config.model, model)));

    let mut optimizer = Vec::new();
    if let Some(momentum) = config.momentum {
        optimizer.push(format!("momentum {}", plain_number(momentum)));
    }
    if let Some(decay) = config.weight_decay {
        optimizer.push(format!("weight decay {}", plain_number(decay)));
    }
    if let Some(norm) = config.clip_grad_norm {
        optimizer.push(format!("gradient norm clipped to {}", plain_number(norm)));
    }
    pairs.push(("Optimizer", with_details(&config.optimizer, optimizer)));
    pairs.push(("Rates", rate_spec(config)));
    if !config.init_from.is_empty() {
        pairs.push(("Init from", config.init_from.clone()));
    }

    let total = config.epochs.map_or("?".to_string(), |e| e.to_string());
    let batch = config
        .batch_size
        .map(|b| format!("batch size {b}"))
        .into_iter()
        .collect();
    pairs.push((
        "Epochs",
        with_details(&format!("{}/{total}", run.epochs_done), batch),
    ));
    pairs.push((
        "Seed",
        config.seed.map_or("-".to_string(), |s| s.to_string()),
    ));
    let device = if run.device.is_empty() {
        &config.device
    } else {
        &run.device
    };
    pairs.push((
        "Device",
        if device.is_empty() {
            "-".to_string()
        } else {
            device.clone()
        },
    ));

    let mut created = format!("{} UTC", utc_time(run.created_at_ms));
    if run.started_at_ms > 0 && run.finished_at_ms >= run.started_at_ms {
        created.push_str(&format!(
            "  (trained in {})",
            duration((run.finished_at_ms - run.started_at_ms) as f64)
        ));
    }
    pairs.push(("Created", created));
    key_values(&pairs)
}

/// `strata show`: the summary, the per-group rate table, the epoch table and the daemon's
/// analysis (verdict, reason, per-group diagnoses).
pub fn show(response: &GetRunResponse) -> String {
    let default_run = Run::default();
    let run = response.run.as_ref().unwrap_or(&default_run);
    let mut sections = vec![
        run_header(run),
        rate_table(&run.parameters),
        epoch_table(&response.epochs, &run.val_metric),
    ];
    if let Some(analysis) = &response.analysis {
        sections.push(crate::analysis::show_section(analysis));
    }
    sections.join("\n\n")
}

/// `strata list`: one line per run, in the order given (the daemon's: newest first).
pub fn list_table(runs: &[Run]) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("EPOCHS", Align::Right),
        ("MODEL", Align::Left),
        ("DATASET", Align::Left),
        ("CREATED", Align::Left),
    ]);
    for run in runs {
        let config = run.config.as_ref();
        let total = config
            .and_then(|c| c.epochs)
            .map_or("?".to_string(), |e| e.to_string());
        let dash_if_empty = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        table.row(vec![
            run.id.clone(),
            dash_if_empty(&run.name),
            match run.queue_position {
                0 => status_label(run.status).into_owned(),
                position => format!("{} #{position}", status_label(run.status)),
            },
            format!("{}/{total}", run.epochs_done),
            dash_if_empty(config.map_or("", |c| c.model.as_str())),
            dash_if_empty(config.map_or("", |c| c.dataset.as_str())),
            utc_time(run.created_at_ms),
        ]);
    }
    table.render_plain()
}

/// `epoch   3/10`: the epoch number padded so that successive lines line up.
pub fn epoch_label(epoch: u32, total_epochs: Option<u32>) -> String {
    match total_epochs {
        Some(total) => {
            let width = total.to_string().len().max(3);
            format!("epoch {epoch:>width$}/{total}")
        }
        None => format!("epoch {epoch:>3}"),
    }
}

/// The short name of the validation metric on the epoch line.
fn metric_label(val_metric: &str) -> &str {
    match val_metric {
        "" | "accuracy" => "acc",
        other => other,
    }
}

/// One line per finished epoch in `strata watch`:
/// `epoch   3/10  train 0.512345  val 0.534567  gap +0.022222  acc 0.8123  (1234 samples/s)`.
pub fn epoch_line(epoch: &EpochRecord, total_epochs: Option<u32>, val_metric: &str) -> String {
    let accuracy = validation_metric(epoch.val_accuracy);
    let throughput = if epoch.samples_per_sec.is_finite() {
        format!("{:.0}", epoch.samples_per_sec)
    } else {
        "-".to_string()
    };
    format!(
        "{}  train {}  val {}  gap {}  {} {accuracy}  ({throughput} samples/s)",
        epoch_label(epoch.epoch, total_epochs),
        metric(epoch.train_loss),
        metric(epoch.val_loss),
        signed_metric(epoch_gap(epoch)),
        metric_label(val_metric),
    )
}

/// The last line of `strata watch`: `run ID completed`, or `run ID failed: reason`.
pub fn run_finished(run_id: &str, status: i32, reason: &str) -> String {
    format!("run {run_id} {}", status_with_reason(status, reason))
}

/// `strata info`.
pub fn server_info(info: &ServerInfo) -> String {
    key_values(&[
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
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::RunStatus;

    fn record(epoch: u32, train: f64, val: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: train,
            val_loss: val,
            val_accuracy: 0.8123,
            duration_ms: 10.0,
            samples_per_sec: 1234.4,
            groups: vec![],
        }
    }

    fn param(name: &str, group: &str, lr: f64, frozen_until: i32) -> ParameterRate {
        ParameterRate {
            name: name.into(),
            group: group.into(),
            shape: vec![64, 2],
            lr,
            frozen_until,
            init: "fresh".into(),
        }
    }

    #[test]
    fn metrics_use_six_decimals_or_scientific() {
        assert_eq!(metric(0.5123449), "0.512345");
        assert_eq!(metric(0.0), "0.000000");
        assert_eq!(metric(1.5e-7), "1.5000e-7");
        assert_eq!(metric(2.5e7), "2.5000e7");
        assert_eq!(metric(f64::NAN), "NaN");
        assert_eq!(metric(f64::INFINITY), "inf");
        assert_eq!(signed_metric(0.022222), "+0.022222");
        assert_eq!(signed_metric(-0.001), "-0.001000");
        assert_eq!(signed_metric(f64::INFINITY), "+inf");
    }

    #[test]
    fn rates_print_like_users_type_them() {
        assert_eq!(rate(1e-3), "1e-3");
        assert_eq!(rate(2.5e-4), "2.5e-4");
        assert_eq!(rate(3.1622776601683795e-5), "3.162e-5");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(1.0), "1e0");
    }

    #[test]
    fn utc_time_formats_unix_ms() {
        assert_eq!(utc_time(0), "-");
        assert_eq!(utc_time(1), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc_time(-1000), "1969-12-31 23:59:59");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(850.0), "850ms");
        assert_eq!(duration(12_345.0), "12.3s");
        assert_eq!(duration(245_000.0), "4m05s");
        assert_eq!(duration(3_720_000.0), "1h02m");
    }

    #[test]
    fn epoch_table_is_right_aligned_with_gap() {
        let table = epoch_table(
            &[record(1, 0.693148, 0.701235), record(10, 0.25, 0.2)],
            "accuracy",
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Epoch | Training Loss | Validation Loss |       Gap | Val Accuracy"
        );
        assert_eq!(
            lines[1],
            "------+---------------+-----------------+-----------+-------------"
        );
        assert_eq!(
            lines[2],
            "    1 |      0.693148 |        0.701235 | +0.008087 |       0.8123"
        );
        assert_eq!(
            lines[3],
            "   10 |      0.250000 |        0.200000 | -0.050000 |       0.8123"
        );
        let regression = epoch_table(&[record(1, 0.5, 0.5)], "r2");
        assert!(
            regression.starts_with("Epoch | Training Loss | Validation Loss |       Gap | Val R²")
        );
        // Every line has the same width, so the columns line up.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }

    #[test]
    fn epoch_table_shows_nan_for_diverged_epochs() {
        let table = epoch_table(&[record(1, f64::NAN, 1.0)], "accuracy");
        assert!(table.lines().nth(2).unwrap().contains("NaN"));
    }

    #[test]
    fn plain_table_pads_columns_and_trims_line_ends() {
        let mut table = Table::new(&[
            ("A", Align::Left),
            ("NUM", Align::Right),
            ("Z", Align::Left),
        ]);
        table.row(vec!["long-cell".into(), "1".into(), "x".into()]);
        table.row(vec!["s".into(), "12345".into()]);
        assert_eq!(
            table.render_plain(),
            "A            NUM  Z\nlong-cell      1  x\ns          12345"
        );
    }

    #[test]
    fn uniform_groups_collapse_to_one_line() {
        let parameters = [
            param("layer0.weight", "layer0", 1e-4, 3),
            param("layer0.bias", "layer0", 1e-4, 3),
            param("layer1.weight", "layer1", 1e-3, 0),
            param("layer1.bias", "layer1", 2e-3, 0),
            param("head.weight", "head", 1e-2, -1),
        ];
        let table = rate_table(&parameters);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert_eq!(lines[0], "GROUP   PARAMETERS      LR  FROZEN");
        assert_eq!(lines[1], "layer0  weight, bias  1e-4  until epoch 3");
        assert_eq!(lines[2], "layer1  weight        1e-3  no");
        assert_eq!(lines[3], "        bias          2e-3  no");
        assert_eq!(lines[4], "head    weight        1e-2  yes");
    }

    #[test]
    fn large_uniform_groups_name_a_count() {
        let parameters: Vec<_> = (0..6)
            .map(|i| param(&format!("block.p{i}"), "block", 1e-3, 0))
            .collect();
        assert!(rate_table(&parameters).contains("6 parameters"));
    }

    #[test]
    fn dry_run_table_lists_every_parameter() {
        let table = parameter_table(&[param("layer0.weight", "layer0", 1e-4, 0)]);
        assert_eq!(
            table,
            "NAME           GROUP   SHAPE      LR  FROZEN  INIT\nlayer0.weight  layer0  [64, 2]  1e-4  no      fresh"
        );
    }

    #[test]
    fn epoch_line_matches_the_documented_shape() {
        let line = epoch_line(&record(3, 0.512345, 0.534567), Some(10), "accuracy");
        assert_eq!(line, "epoch   3/10  train 0.512345  val 0.534567  gap +0.022222  acc 0.8123  (1234 samples/s)");
        let line = epoch_line(&record(3, 0.5, 0.5), Some(1000), "r2");
        assert!(line.starts_with("epoch    3/1000  "), "{line}");
        assert!(line.contains(" r2 0.8123 "), "{line}");
    }

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
        let table = list_table(&[run]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "ID                NAME  STATUS   EPOCHS  MODEL      DATASET  CREATED"
        );
        assert_eq!(
            lines[1],
            "0123456789abcdef  -     running    3/10  mlp:64,64  spirals  2023-11-14 22:13:20"
        );
    }

    #[test]
    fn header_names_status_reason_and_rate_spec() {
        let run = Run {
            id: "0123456789abcdef".into(),
            name: "baseline".into(),
            status: RunStatus::Diverged as i32,
            reason: "loss became NaN at epoch 2".into(),
            config: Some(RunConfig {
                dataset: "moons".into(),
                samples: Some(500),
                optimizer: "sgd".into(),
                momentum: Some(0.9),
                lr: Some(1e-2),
                layer_lr: vec!["layer0=1e-4".into()],
                schedule: "constant".into(),
                epochs: Some(5),
                seed: Some(7),
                ..RunConfig::default()
            }),
            epochs_done: 2,
            device: "cpu".into(),
            ..Run::default()
        };
        let header = run_header(&run);
        assert!(
            header.contains("Run        0123456789abcdef  baseline"),
            "{header}"
        );
        assert!(
            header.contains("Status     diverged: loss became NaN at epoch 2"),
            "{header}"
        );
        assert!(
            header.contains("Dataset    moons  (500 samples)"),
            "{header}"
        );
        assert!(
            header.contains("Optimizer  sgd  (momentum 0.9)"),
            "{header}"
        );
        assert!(
            header.contains("Rates      lr 1e-2; layer-lr layer0=1e-4; schedule constant"),
            "{header}"
        );
        assert!(header.contains("Epochs     2/5"), "{header}");
        assert!(header.contains("Seed       7"), "{header}");
        assert!(header.contains("Device     cpu"), "{header}");
    }

    #[test]
    fn header_shows_a_file_dataset_with_its_label_task_and_validation_file() {
        let run = Run {
            config: Some(RunConfig {
                dataset: "csv:/data/train.csv".into(),
                label: "species".into(),
                task: "classification".into(),
                val_dataset: "csv:/data/val.csv".into(),
                ..RunConfig::default()
            }),
            ..Run::default()
        };
        let header = run_header(&run);
        assert!(
            header.contains(
                "Dataset    csv:/data/train.csv  (label species, classification, validation csv:/data/val.csv)"
            ),
            "{header}"
        );
    }

    #[test]
    fn finished_line_includes_reason_only_when_given() {
        assert_eq!(
            run_finished("abc", RunStatus::Completed as i32, ""),
            "run abc completed"
        );
        assert_eq!(
            run_finished("abc", RunStatus::Failed as i32, "out of memory"),
            "run abc failed: out of memory"
        );
    }
}
