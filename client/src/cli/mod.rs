//! Command-line arguments of `strata`.
//!
//! Spec strings (dataset, model, layer rates, freeze rules, schedule) are forwarded verbatim: the
//! daemon parses and validates them, so every client gets the same rules and messages. The one
//! exception: a relative file path in a dataset or model spec (`csv:data.csv`) is made absolute
//! against the directory `strata` runs in, since the daemon reads the file and does not share that
//! directory. Flags that are not given travel as unset, so the daemon's defaults apply.
//!
//! `config.rs` holds the run configuration flags of `strata start`, `threshold.rs` the analysis
//! thresholds of `show` and `compare`.

mod config;
mod sweep;
mod threshold;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use strata_proto::{Baseline, RunStatus, Verdict};

pub use config::{ConfigArgs, FixedConfigArgs};
pub use sweep::{SweepArgs, SweepCommand, SweepShowArgs, SweepStartArgs};
use threshold::parse_threshold;
pub use threshold::{thresholds, ThresholdOverride};

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
    /// Address of stratad: `http://host:port` or `host:port`; repeat it (or give STRATA_ADDR a
    /// comma-separated list) for several daemons; `dns:///HOST:PORT` is every daemon HOST
    /// resolves to (a Kubernetes headless Service). Default: the daemons file if there is one,
    /// else http://127.0.0.1:50051.
    #[arg(
        long,
        global = true,
        env = "STRATA_ADDR",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub addr: Vec<String>,
    /// A daemons file naming several daemons (`[daemons.NAME]` tables with `addr`, optional
    /// `token_file` and `tls_ca`; see docs/src/operations/several-daemons.md). Default: ~/.config/strata/daemons.toml when
    /// it exists and no --addr is given.
    #[arg(long, global = true, env = "STRATA_DAEMONS", value_name = "FILE")]
    pub daemons: Option<PathBuf>,
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
    /// Export a run's epochs and per-group records as CSV or JSON, or runs as TensorBoard event
    /// files.
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
    /// Learning-rate range test per layer group (fastai's lr_find): sweep each group's rate from
    /// --start-lr to --end-lr while the others keep theirs, and suggest a rate per group.
    #[command(name = "lr-find")]
    LrFind(Box<LrFindArgs>),
    /// Run a sweep: a grid or a random search over the rate flags, trials spread over the
    /// daemons, hopeless ones stopped early; `sweep show ID` ranks them.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Sweep(Box<SweepArgs>),
    /// Show what each daemon runs on: version, devices, limits, runs training and queued.
    Info,
    /// List the remote workers connected to each daemon: what each offers, the run it trains,
    /// its last heartbeat.
    Workers,
    /// Send the spool files a Python logger left in DIR while stratad was away (each run found
    /// again by its key; what the daemon holds already is skipped), then remove them.
    Sync(SyncArgs),
    /// Print a shell completion script: `strata completions bash > ~/.local/share/bash-completion/completions/strata`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The logger's spool folder (its warning names it; default ~/.cache/strata/spool).
    pub dir: PathBuf,
    /// Keep each file after it was sent.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Run id, or a unique prefix of it.
    pub run: String,
    /// Also draw training (dashed) and validation (solid) loss to FILE (.png or .svg).
    #[arg(long, value_name = "FILE", value_parser = parse_plot_path)]
    pub plot: Option<PathBuf>,
    /// Override an analysis threshold, e.g. `overfit_gap=0.3` (repeatable; see docs/src/analysis.md).
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
    /// Override an analysis threshold, e.g. `overfit_gap=0.3` (repeatable; see docs/src/analysis.md).
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
    /// TensorBoard event files, one folder per run, under the folder given with -o.
    Tensorboard,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Run ids, or unique prefixes of them (several only with --format tensorboard).
    #[arg(required = true, num_args = 1.., value_name = "RUN")]
    pub runs: Vec<String>,
    /// Output format (default: csv, or json with --json).
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Write to FILE instead of stdout (with --format tensorboard: into the folder DIR).
    #[arg(long, short = 'o', value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
}

impl ExportArgs {
    /// The format to write: the one asked for, else csv (json with --json).
    pub fn format(&self, as_json: bool) -> ExportFormat {
        self.format.unwrap_or(if as_json {
            ExportFormat::Json
        } else {
            ExportFormat::Csv
        })
    }
}

impl Cli {
    /// Rules between flags that clap's attributes cannot say; a broken one is a usage error
    /// (exit 2), reported before anything connects.
    pub fn check(&self) -> Result<(), clap::Error> {
        let problem = match &self.command {
            Command::Export(args) => self.export_problem(args),
            Command::LrFind(args) => lr_find_problem(args),
            _ => None,
        };
        match problem {
            Some(message) => Err(<Cli as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message)),
            None => Ok(()),
        }
    }

    fn export_problem(&self, args: &ExportArgs) -> Option<String> {
        match args.format(self.global.json) {
            ExportFormat::Tensorboard if args.output.is_none() => Some(
                "--format tensorboard writes a folder per run; name the folder with -o DIR"
                    .to_string(),
            ),
            ExportFormat::Csv | ExportFormat::Json if args.runs.len() > 1 => Some(format!(
                "csv and json export one run, not {}; export them one by one, or all at once \
                 with --format tensorboard -o DIR",
                args.runs.len()
            )),
            _ => None,
        }
    }
}

/// The sweep goes up: --end-lr above --start-lr (either one against the other's default).
fn lr_find_problem(args: &LrFindArgs) -> Option<String> {
    let start = args.start_lr.unwrap_or(DEFAULT_START_LR);
    let end = args.end_lr.unwrap_or(DEFAULT_END_LR);
    (end <= start).then(|| {
        let rate = crate::render::format::rate;
        format!(
            "--end-lr ({}) must be above --start-lr ({}): the sweep goes up from --start-lr \
             (default {}) to --end-lr (default {})",
            rate(end),
            rate(start),
            rate(DEFAULT_START_LR),
            rate(DEFAULT_END_LR)
        )
    })
}

/// fastai's `lr_find` range, which the daemon also defaults to.
const DEFAULT_START_LR: f64 = 1e-7;
const DEFAULT_END_LR: f64 = 10.0;

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
    /// Only the trials of this sweep (its id, as `strata sweep` printed it).
    #[arg(long, value_name = "ID")]
    pub sweep: Option<String>,
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
    /// With several daemons: start the run on the daemon called NAME (default: the one with the
    /// most free slots).
    #[arg(long, value_name = "NAME")]
    pub on: Option<String>,
    /// Also start a single-rate twin: the same run with every group at one rate (`lr=RATE`, or
    /// the run's base --lr) and nothing frozen; `show` and `compare` then say whether the layer
    /// rates helped.
    #[arg(long, value_name = "lr=RATE", num_args = 0..=1, default_missing_value = "", value_parser = parse_baseline)]
    pub baseline: Option<Baseline>,
}

/// `strata lr-find`: the run config of `strata start`, and the range test's settings. Unset
/// settings take the daemon's defaults, which are fastai's.
#[derive(Debug, Args)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// First rate of each group's sweep [default: 1e-7].
    #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_sweep_rate)]
    pub start_lr: Option<f64>,
    /// Rate each sweep grows toward, exponentially [default: 10].
    #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_sweep_rate)]
    pub end_lr: Option<f64>,
    /// Optimizer steps per group, 6 to 2000 [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(6..=2000))]
    pub steps: Option<u32>,
    /// Probe only the groups matching GLOB (repeatable; default: every group).
    #[arg(long = "group", value_name = "GLOB")]
    pub groups: Vec<String>,
    /// Also draw every group's loss against its rate to FILE (.png or .svg).
    #[arg(long, value_name = "FILE", value_parser = parse_plot_path)]
    pub plot: Option<PathBuf>,
    /// Then start a run with each probed group at its suggested rate (valley, fastai's default).
    #[arg(long)]
    pub apply: bool,
    /// With --apply: a name for the run.
    #[arg(long, requires = "apply")]
    pub name: Option<String>,
    /// With several daemons: probe (and --apply) on the daemon called NAME (default: the one
    /// with the most free slots).
    #[arg(long, value_name = "NAME")]
    pub on: Option<String>,
}

/// A sweep's rate: a positive number.
fn parse_sweep_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a rate; a positive number is, e.g. 1e-7"
        )),
    }
}

/// `--baseline` alone, or `--baseline lr=RATE`.
fn parse_baseline(text: &str) -> Result<Baseline, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Baseline { lr: None });
    }
    let rate = text.strip_prefix("lr=").ok_or_else(|| {
        format!("'{text}': write lr=RATE, e.g. --baseline lr=1e-2, or --baseline alone")
    })?;
    let lr: f64 = rate
        .parse()
        .map_err(|_| format!("'{rate}' is not a number; write lr=RATE, e.g. lr=1e-2"))?;
    Ok(Baseline { lr: Some(lr) })
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
            assert_eq!(cli.global.addr, ["h:1"]);
        }
        let several =
            Cli::try_parse_from(["strata", "list", "--addr", "a:1,b:2", "--addr", "c:3"]).unwrap();
        assert_eq!(several.global.addr, ["a:1", "b:2", "c:3"]);
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
        let start = |extra: &[&str]| {
            let mut argv = vec!["strata", "start", "--dataset", "moons"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).map(|cli| cli.command) {
                Ok(Command::Start(args)) => Ok(args.baseline),
                Ok(_) => panic!("not start"),
                Err(err) => Err(err.to_string()),
            }
        };
        assert_eq!(start(&[]).unwrap(), None);
        assert_eq!(start(&["--baseline"]).unwrap(), Some(Baseline { lr: None }));
        assert_eq!(
            start(&["--baseline", "lr=1e-2"]).unwrap(),
            Some(Baseline { lr: Some(1e-2) })
        );
        assert!(start(&["--baseline", "1e-2"])
            .unwrap_err()
            .contains("write lr=RATE"));
        let err = Cli::try_parse_from(["strata", "list", "--verdict", "bad"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("good, plateaued, overfitting, unstable, slow, not-learning"),
            "{err}"
        );
    }

    #[test]
    fn lr_find_takes_start_flags_and_checks_its_range() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["strata", "lr-find", "--dataset", "moons", "--lr", "1e-2"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).and_then(|cli| cli.check().map(|()| cli))
        };
        let cli = parse(&["--group", "layer*", "--steps", "50", "--apply"]).unwrap();
        let Command::LrFind(args) = cli.command else {
            panic!("not lr-find")
        };
        assert_eq!(args.config.to_proto().lr, Some(1e-2));
        assert_eq!(
            (args.groups, args.steps, args.apply),
            (vec!["layer*".to_string()], Some(50), true)
        );
        assert_eq!(
            (args.start_lr, args.end_lr),
            (None, None),
            "the daemon's defaults"
        );
        for (bad, flag) in [
            (&["--steps", "5"][..], "--steps"),
            (&["--steps", "2001"][..], "--steps"),
            (&["--start-lr", "0"][..], "--start-lr"),
            (&["--end-lr", "-1"][..], "--end-lr"),
            (&["--start-lr", "1e-3", "--end-lr", "1e-4"][..], "--end-lr"),
            (&["--start-lr", "20"][..], "--start-lr"),
            (&["--name", "x"][..], "--apply"),
        ] {
            let err = parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().contains(flag), "{bad:?}: {err}");
        }
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

    #[test]
    fn export_takes_several_runs_only_as_tensorboard_and_tensorboard_needs_a_folder() {
        let check = |argv: &[&str]| {
            let mut full = vec!["strata", "export"];
            full.extend_from_slice(argv);
            Cli::try_parse_from(full).unwrap().check()
        };
        assert!(check(&["ab", "cd", "--format", "tensorboard", "-o", "tb"]).is_ok());
        assert!(check(&["ab", "-o", "x.csv"]).is_ok());
        let err = check(&["ab", "--format", "tensorboard"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("-o DIR"), "{err}");
        for argv in [
            &["ab", "cd"][..],
            &["ab", "cd", "--json"],
            &["ab", "cd", "--format", "csv"],
        ] {
            let err = check(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
            assert!(err.to_string().contains("--format tensorboard"), "{err}");
        }
        assert!(
            Cli::try_parse_from(["strata", "export"]).is_err(),
            "a run is required"
        );
    }
}
