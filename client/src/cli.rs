//! Command-line arguments of `strata`.
//!
//! Spec strings (dataset, model, layer rates, freeze rules, schedule) are forwarded verbatim: the
//! daemon parses and validates them, so every client gets the same rules and messages. The one
//! exception: a relative file path in a dataset or model spec (`csv:data.csv`) is made absolute
//! against the directory `strata` runs in, since the daemon reads the file and does not share that
//! directory. Flags that are not given travel as unset, so the daemon's defaults apply.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use strata_proto::{AnalysisThresholds, RunConfig, RunStatus, Verdict};

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Start, watch and inspect learning-rate-differential training runs on stratad."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes, before or after the subcommand's name.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Address of stratad: `http://host:port` or `host:port`.
    #[arg(
        long,
        global = true,
        env = "STRATA_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Auth token, sent as `authorization: Bearer TOKEN`.
    #[arg(long, global = true, env = "STRATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to trust for an `https://` address (default: the system's roots).
    #[arg(long, global = true, env = "STRATA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Machine-readable output: one JSON object (NDJSON lines for `watch`).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a run and print its id.
    Start(Box<StartArgs>),
    /// Stream a run: its history, then live progress until it ends.
    Watch(WatchArgs),
    /// Show a run: config, learning rates per group, the epoch table and the daemon's verdict.
    Show(ShowArgs),
    /// Compare runs side by side, best validation loss first, with verdicts and a chart.
    Compare(CompareArgs),
    /// Export a run's epochs and per-group records as CSV or JSON.
    Export(ExportArgs),
    /// List runs, newest first.
    List(ListArgs),
    /// Cancel a queued or running run (its epochs so far are kept).
    Cancel(RunArg),
    /// Continue an interrupted or cancelled run from its last checkpoint (or a completed one to
    /// more epochs with --epochs).
    Resume(ResumeArgs),
    /// Delete a finished run, its epochs and its checkpoints.
    Delete(RunArg),
    /// Show what the daemon runs on: version, devices, limits.
    Info,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id or unique prefix.
    pub run: String,
    /// Train until this many epochs in total (default: the run's configured epochs).
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Stream the run after resuming it, like `strata watch`.
    #[arg(long)]
    pub follow: bool,
}

/// A run named by its id or a unique prefix of it.
#[derive(Debug, Args)]
pub struct RunArg {
    /// Run id, or a unique prefix of it.
    pub run: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Run id, or a unique prefix of it.
    pub run: String,
    /// First epoch to show (epochs are numbered from 1).
    #[arg(long, value_name = "E", default_value_t = 0)]
    pub from_epoch: u32,
}

/// Analysis thresholds to override, as the daemon names them.
pub const THRESHOLD_NAMES: [&str; 10] = [
    "min_epochs",
    "near_best_fraction",
    "diverged_ratio",
    "unstable_fraction",
    "unstable_jump",
    "overfit_val_rise",
    "overfit_gap",
    "slow_improvement",
    "update_ratio_high",
    "update_ratio_low",
];

/// One `--threshold NAME=VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdOverride {
    pub name: String,
    pub value: f64,
}

fn parse_threshold(text: &str) -> Result<ThresholdOverride, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE; names: {}", THRESHOLD_NAMES.join(", ")))?;
    let name = name.trim();
    if !THRESHOLD_NAMES.contains(&name) {
        return Err(format!(
            "unknown threshold '{name}'; allowed: {}",
            THRESHOLD_NAMES.join(", ")
        ));
    }
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("'{value}' is not a number"))?;
    if name == "min_epochs" && (value.fract() != 0.0 || value < 0.0 || value > f64::from(u32::MAX))
    {
        return Err(format!("min_epochs must be a whole number, not {value}"));
    }
    Ok(ThresholdOverride {
        name: name.to_string(),
        value,
    })
}

/// The overrides as the request's thresholds; `None` when there are none (daemon defaults).
/// The daemon checks the values' ranges.
pub fn thresholds(overrides: &[ThresholdOverride]) -> Option<AnalysisThresholds> {
    if overrides.is_empty() {
        return None;
    }
    let mut t = AnalysisThresholds::default();
    for ThresholdOverride { name, value } in overrides {
        let value = Some(*value);
        match name.as_str() {
            "min_epochs" => t.min_epochs = value.map(|v| v as u32),
            "near_best_fraction" => t.near_best_fraction = value,
            "diverged_ratio" => t.diverged_ratio = value,
            "unstable_fraction" => t.unstable_fraction = value,
            "unstable_jump" => t.unstable_jump = value,
            "overfit_val_rise" => t.overfit_val_rise = value,
            "overfit_gap" => t.overfit_gap = value,
            "slow_improvement" => t.slow_improvement = value,
            "update_ratio_high" => t.update_ratio_high = value,
            "update_ratio_low" => t.update_ratio_low = value,
            // parse_threshold admits only the names above.
            _ => {}
        }
    }
    Some(t)
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Run id, or a unique prefix of it.
    pub run: String,
    /// Also draw training (dashed) and validation (solid) loss to FILE (.png or .svg).
    #[arg(long, value_name = "FILE", value_parser = parse_plot_path)]
    pub plot: Option<PathBuf>,
    /// Override an analysis threshold, e.g. `overfit_gap=0.3` (repeatable; see the README).
    #[arg(long = "threshold", value_name = "NAME=VALUE", value_parser = parse_threshold)]
    pub thresholds: Vec<ThresholdOverride>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run ids, or unique prefixes of them.
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<String>,
    /// Also draw every run's training (dashed) and validation (solid) loss to FILE (.png or .svg).
    #[arg(long, value_name = "FILE", value_parser = parse_plot_path)]
    pub plot: Option<PathBuf>,
    /// Override an analysis threshold, e.g. `overfit_gap=0.3` (repeatable; see the README).
    #[arg(long = "threshold", value_name = "NAME=VALUE", value_parser = parse_threshold)]
    pub thresholds: Vec<ThresholdOverride>,
}

/// A `--plot` file: its extension must name a format the CLI draws.
fn parse_plot_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    crate::render::plot::PlotFormat::of(&path).map(|_| path)
}

/// What `strata export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One row per epoch, with GROUP_lr, GROUP_update_ratio, ... columns per layer group.
    Csv,
    /// The run, its config, every epoch with its groups, and the analysis (as `show --json`).
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run id, or a unique prefix of it.
    pub run: String,
    /// Output format (default: csv, or json with --json).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs with this status.
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<RunStatus>,
    /// Only runs carrying this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// At most this many runs.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only runs whose analysis has this verdict.
    #[arg(long, value_name = "VERDICT", value_parser = parse_verdict)]
    pub verdict: Option<Verdict>,
}

/// A verdict label as users type it; the error lists every allowed label.
fn parse_verdict(label: &str) -> Result<Verdict, String> {
    Verdict::from_label(label)
        .ok_or_else(|| format!("unknown verdict; allowed: {}", Verdict::labels()))
}

/// A status label as users type it; the error lists every allowed label.
fn parse_status(label: &str) -> Result<RunStatus, String> {
    RunStatus::from_label(label).ok_or_else(|| {
        let allowed: Vec<&str> = RunStatus::ALL.iter().map(|s| s.label()).collect();
        format!("unknown status; allowed: {}", allowed.join(", "))
    })
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A name for the run.
    #[arg(long)]
    pub name: Option<String>,
    /// A tag for the run (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// After starting, watch the run as `strata watch` does.
    #[arg(long, conflicts_with = "dry_run")]
    pub follow: bool,
    /// Resolve and print the per-parameter learning rates; start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The run configuration flags, one per `RunConfig` field.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Dataset: spirals, moons, blobs, xor, regression; csv:PATH; idx:DIR (files are read on the daemon's host).
    #[arg(long, value_name = "SPEC")]
    pub dataset: String,
    /// Label column of a csv: dataset: a header name, or an index from 1 (-1, the default, is the last column).
    #[arg(long, value_name = "NAME|INDEX", allow_hyphen_values = true)]
    pub label: Option<String>,
    /// Validate on this file instead of a split: csv:PATH, with the dataset's columns.
    #[arg(long, value_name = "SPEC")]
    pub val_dataset: Option<String>,
    /// classification or regression (default: detected from the labels).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Clip each step's gradients to this total L2 norm.
    #[arg(long, value_name = "NORM", allow_negative_numbers = true)]
    pub clip_grad_norm: Option<f64>,
    /// Fine-tune: start from RUN's last checkpoint (or RUN@EPOCH's); parameters matching by name
    /// and shape are loaded, the rest (a new head) freshly initialised.
    #[arg(long, value_name = "RUN[@EPOCH]")]
    pub init_from: Option<String>,
    /// Samples generated by a synthetic dataset.
    #[arg(long, value_name = "N")]
    pub samples: Option<u32>,
    /// Noise level of a synthetic dataset.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub noise: Option<f64>,
    /// Number of classes (spirals, blobs).
    #[arg(long, value_name = "N")]
    pub classes: Option<u32>,
    /// Fraction of samples held out for validation.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// Model: `mlp:H1,H2,...[:act=A][:dropout=P]`, `cnn[:C1,C2,...][:act=A][:dropout=P]`, `torchscript:PATH`.
    #[arg(long, value_name = "SPEC", default_value = "mlp:64,64")]
    pub model: String,
    /// Optimizer: sgd, adam, adamw.
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
    /// Base learning rate: the head and every parameter no other rule names.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Weight decay.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Rate for parameters or groups matching GLOB: `GLOB=RATE` or `GLOB=xFACTOR` (repeatable; later rules win).
    #[arg(long = "layer-lr", value_name = "GLOB=RATE")]
    pub layer_lr: Vec<String>,
    /// Freeze parameters matching GLOB for good, or until EPOCH (repeatable).
    #[arg(long = "freeze", value_name = "GLOB[@EPOCH]")]
    pub freeze: Vec<String>,
    /// Layer-wise decay: each group below the last gets the rate above times this.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub lr_decay: Option<f64>,
    /// Rates spaced geometrically from the first group to the last.
    #[arg(long, value_name = "LO:HI")]
    pub lr_slice: Option<String>,
    /// Learning-rate schedule, e.g. constant, cosine, step:EVERY:GAMMA.
    #[arg(long, value_name = "SPEC")]
    pub schedule: Option<String>,
    /// Number of epochs.
    #[arg(long, value_name = "N")]
    pub epochs: Option<u32>,
    /// Batch size.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    /// Random seed (data, split, initialization).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N, auto.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Batch-loss events streamed per epoch (0: none).
    #[arg(long = "progress-events", value_name = "N")]
    pub progress_events: Option<u32>,
}

impl ConfigArgs {
    /// The config to send; string fields not given are empty, which the daemon reads as unset.
    pub fn to_proto(&self) -> RunConfig {
        RunConfig {
            dataset: with_absolute_path(&self.dataset),
            samples: self.samples,
            noise: self.noise,
            classes: self.classes,
            val_fraction: self.val_fraction,
            model: with_absolute_path(&self.model),
            optimizer: self.optimizer.clone().unwrap_or_default(),
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            layer_lr: self.layer_lr.clone(),
            freeze: self.freeze.clone(),
            lr_decay: self.lr_decay,
            lr_slice: self.lr_slice.clone().unwrap_or_default(),
            schedule: self.schedule.clone().unwrap_or_default(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            device: self.device.clone().unwrap_or_default(),
            progress_events_per_epoch: self.progress_events,
            label: self.label.clone().unwrap_or_default(),
            val_dataset: self
                .val_dataset
                .as_deref()
                .map(with_absolute_path)
                .unwrap_or_default(),
            task: self.task.clone().unwrap_or_default(),
            init_from: self.init_from.clone().unwrap_or_default(),
            clip_grad_norm: self.clip_grad_norm,
        }
    }
}

/// Spec kinds whose text after `KIND:` is a path on the daemon's host.
const FILE_SPEC_KINDS: [&str; 3] = ["csv", "idx", "torchscript"];

/// `csv:data.csv` → `csv:/current/dir/data.csv` (and `~/` → the home folder); any other spec, or
/// an absolute path, is returned unchanged.
fn with_absolute_path(spec: &str) -> String {
    let Some((kind, path)) = spec.split_once(':') else {
        return spec.to_string();
    };
    let path = path.trim();
    if !FILE_SPEC_KINDS.contains(&kind.trim().to_ascii_lowercase().as_str()) || path.is_empty() {
        return spec.to_string();
    }
    let expanded = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        return format!("{kind}:{}", expanded.display());
    }
    match std::path::absolute(Path::new(&expanded)) {
        Ok(absolute) => format!("{kind}:{}", absolute.display()),
        Err(_) => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let before = Cli::try_parse_from(["strata", "--json", "--addr", "h:1", "list"]).unwrap();
        let after = Cli::try_parse_from(["strata", "list", "--json", "--addr", "h:1"]).unwrap();
        for cli in [before, after] {
            assert!(cli.global.json);
            assert_eq!(cli.global.addr, "h:1");
        }
    }

    #[test]
    fn start_flags_map_onto_run_config() {
        let cli = Cli::try_parse_from([
            "strata",
            "start",
            "--dataset",
            "spirals",
            "--lr",
            "1e-3",
            "--layer-lr",
            "layer0=1e-4",
            "--layer-lr",
            "head=x2",
            "--freeze",
            "layer0@3",
            "--epochs",
            "5",
            "--progress-events",
            "0",
            "--tag",
            "a",
            "--tag",
            "b",
        ])
        .unwrap();
        let Command::Start(start) = cli.command else {
            panic!("not start")
        };
        let config = start.config.to_proto();
        assert_eq!(config.dataset, "spirals");
        assert_eq!(config.model, "mlp:64,64");
        assert_eq!(config.lr, Some(1e-3));
        assert_eq!(config.layer_lr, ["layer0=1e-4", "head=x2"]);
        assert_eq!(config.freeze, ["layer0@3"]);
        assert_eq!(config.epochs, Some(5));
        assert_eq!(config.progress_events_per_epoch, Some(0));
        assert_eq!(config.samples, None);
        assert_eq!(config.optimizer, "");
        assert_eq!(start.tags, ["a", "b"]);
    }

    #[test]
    fn data_flags_map_onto_run_config_with_absolute_paths() {
        let cli = Cli::try_parse_from([
            "strata",
            "start",
            "--dataset",
            "csv:data/train.csv",
            "--val-dataset",
            "csv:/abs/val.csv",
            "--label",
            "-1",
            "--task",
            "regression",
            "--model",
            "torchscript:net.pt",
        ])
        .unwrap();
        let Command::Start(start) = cli.command else {
            panic!("not start")
        };
        let config = start.config.to_proto();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            config.dataset,
            format!("csv:{}", cwd.join("data/train.csv").display())
        );
        assert_eq!(config.val_dataset, "csv:/abs/val.csv");
        assert_eq!(config.label, "-1");
        assert_eq!(config.task, "regression");
        assert_eq!(
            config.model,
            format!("torchscript:{}", cwd.join("net.pt").display())
        );
        for unchanged in ["spirals", "mlp:64,64:act=tanh", "idx:/data/mnist", "csv:"] {
            assert_eq!(with_absolute_path(unchanged), unchanged);
        }
    }

    #[test]
    fn negative_rates_reach_the_daemon_for_validation() {
        let cli =
            Cli::try_parse_from(["strata", "start", "--dataset", "xor", "--lr", "-1"]).unwrap();
        let Command::Start(start) = cli.command else {
            panic!("not start")
        };
        assert_eq!(start.config.lr, Some(-1.0));
    }

    #[test]
    fn unknown_status_is_a_usage_error_listing_labels() {
        let err = Cli::try_parse_from(["strata", "list", "--status", "done"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("queued, running, completed"),
            "{err}"
        );
    }

    #[test]
    fn analysis_commands_parse_thresholds_plots_and_formats() {
        let cli = Cli::try_parse_from([
            "strata",
            "compare",
            "ab",
            "cd",
            "--plot",
            "out.svg",
            "--threshold",
            "overfit_gap=0.3",
            "--threshold",
            "min_epochs=5",
        ])
        .unwrap();
        let Command::Compare(args) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(args.runs, ["ab", "cd"]);
        assert_eq!(args.plot.as_deref(), Some(std::path::Path::new("out.svg")));
        let t = thresholds(&args.thresholds).unwrap();
        assert_eq!((t.overfit_gap, t.min_epochs), (Some(0.3), Some(5)));
        assert_eq!(t.diverged_ratio, None);
        assert_eq!(thresholds(&[]), None);

        for bad in ["nope=1", "overfit_gap", "overfit_gap=x", "min_epochs=2.5"] {
            let err =
                Cli::try_parse_from(["strata", "show", "ab", "--threshold", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(
            Cli::try_parse_from(["strata", "compare"]).is_err(),
            "a run is required"
        );
        let err = Cli::try_parse_from(["strata", "compare", "ab", "--plot", "x.pdf"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(".png or .svg"), "{err}");

        let cli = Cli::try_parse_from(["strata", "export", "ab", "--format", "csv", "-o", "x.csv"])
            .unwrap();
        let Command::Export(args) = cli.command else {
            panic!("not export")
        };
        assert_eq!(args.format, Some(ExportFormat::Csv));
        assert!(Cli::try_parse_from(["strata", "export", "ab", "--format", "xml"]).is_err());

        let cli = Cli::try_parse_from(["strata", "list", "--verdict", "too-short"]).unwrap();
        let Command::List(args) = cli.command else {
            panic!("not list")
        };
        assert_eq!(args.verdict, Some(Verdict::TooShort));
        let err = Cli::try_parse_from(["strata", "list", "--verdict", "bad"]).unwrap_err();
        assert!(
            err.to_string().contains("good, overfitting, unstable"),
            "{err}"
        );
    }

    #[test]
    fn dataset_is_required_and_follow_conflicts_with_dry_run() {
        assert!(Cli::try_parse_from(["strata", "start"]).is_err());
        assert!(Cli::try_parse_from([
            "strata",
            "start",
            "--dataset",
            "xor",
            "--follow",
            "--dry-run"
        ])
        .is_err());
    }
}
