//! The flags of `strata sweep` and `strata sweep show`.
//!
//! A sweep takes `strata start`'s flags: those of the data, model and epochs as they are (one
//! value for every trial), and the rate flags as lists (`--lr 1e-3,1e-2`, a grid) or ranges
//! (`--lr log:1e-4..1e-1` with `--trials N`, a random search).

use crate::sweep::{
    space::Target,
    stopping::{DEFAULT_MIN_FINISHED_TRIALS, DEFAULT_WARMUP_EPOCHS},
    SpecError, StoppingRule, SweepSpace,
};
use clap::{Args, Subcommand};

use super::FixedConfigArgs;

/// `strata sweep FLAGS...` starts a sweep; `strata sweep show ID` ranks one.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub show: Option<SweepCommand>,
    /// The sweep to start (without `show`).
    #[command(flatten)]
    pub start: SweepStartArgs,
}

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// A sweep's trials ranked by best validation loss, the effect of each swept setting, and a
    /// recommendation.
    Show(SweepShowArgs),
}

#[derive(Debug, Args)]
pub struct SweepShowArgs {
    /// The sweep's id, as `strata sweep` printed it.
    pub sweep: String,
}

#[derive(Debug, Args)]
pub struct SweepStartArgs {
    /// Unset only with `sweep show` (clap cannot make `--dataset` required for one and not the
    /// other); `strata sweep` without it is a usage error.
    #[command(flatten)]
    pub fixed: Option<FixedConfigArgs>,
    #[command(flatten)]
    pub swept: SweptArgs,
    /// Draw this many trials at random (seeded by --sweep-seed) instead of the whole grid;
    /// needed for ranges (`log:LO..HI`, `uniform:LO..HI`).
    #[arg(long, value_name = "N")]
    pub trials: Option<u32>,
    /// Seed of the random search's draws.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub sweep_seed: u64,
    /// Completed trials needed before the median rule stops a trial (Optuna's n_startup_trials).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MIN_FINISHED_TRIALS)]
    pub min_finished_trials: u32,
    /// Epochs of each trial the median rule never judges (Optuna's n_warmup_steps).
    #[arg(long, value_name = "E", default_value_t = DEFAULT_WARMUP_EPOCHS)]
    pub warmup_epochs: u32,
    /// Never stop a trial for being worse than the median (divergence still stops it).
    #[arg(long)]
    pub no_early_stop: bool,
}

/// `strata start`'s rate flags, each a comma list of values or a range.
#[derive(Debug, Args)]
pub struct SweptArgs {
    /// Base learning rates: `1e-3,1e-2`, or `log:LO..HI` with --trials.
    #[arg(long, value_name = "RATES", allow_hyphen_values = true)]
    pub lr: Option<String>,
    /// Layer-wise decays: `0.5,0.8`, or `uniform:LO..HI` with --trials.
    #[arg(long, value_name = "X,...", allow_hyphen_values = true)]
    pub lr_decay: Option<String>,
    /// Rate slices: `1e-5:1e-3,1e-4:1e-2`.
    #[arg(long, value_name = "LO:HI,...")]
    pub lr_slice: Option<String>,
    /// A rule with its rates: `GLOB=RATE,...` (rates or xFACTORs), or `GLOB=log:LO..HI`
    /// (repeatable: the grid is their product; later rules win).
    #[arg(long = "layer-lr", value_name = "GLOB=RATE,...")]
    pub layer_lr: Vec<String>,
    /// Freeze GLOB for good, or until one of EPOCHS: `GLOB@E,...` (repeatable).
    #[arg(long = "freeze", value_name = "GLOB[@E,...]")]
    pub freeze: Vec<String>,
    /// Schedules: `constant,cosine`.
    #[arg(long, value_name = "SPEC,...")]
    pub schedule: Option<String>,
    /// Weight decays: `0,1e-4`, or a range with --trials.
    #[arg(long, value_name = "X,...", allow_hyphen_values = true)]
    pub weight_decay: Option<String>,
    /// SGD momenta: `0.9,0.99`, or a range with --trials.
    #[arg(long, value_name = "X,...", allow_hyphen_values = true)]
    pub momentum: Option<String>,
    /// Batch sizes: `16,32,64`.
    #[arg(long, value_name = "N,...")]
    pub batch_size: Option<String>,
    /// Optimizers: `sgd,adam`.
    #[arg(long, value_name = "NAME,...")]
    pub optimizer: Option<String>,
    /// Run seeds (data, split, initialization): `0,1,2`.
    #[arg(long, value_name = "N,...")]
    pub seed: Option<String>,
}

impl SweptArgs {
    /// The sweep's settings, in a fixed order: the rates first, then the rest.
    pub fn space(&self) -> Result<SweepSpace, SpecError> {
        let mut space = SweepSpace::default();
        let plain: [(&'static str, Target, &Option<String>); 9] = [
            ("--lr", Target::Lr, &self.lr),
            ("--lr-decay", Target::LrDecay, &self.lr_decay),
            ("--lr-slice", Target::LrSlice, &self.lr_slice),
            ("--schedule", Target::Schedule, &self.schedule),
            ("--weight-decay", Target::WeightDecay, &self.weight_decay),
            ("--momentum", Target::Momentum, &self.momentum),
            ("--batch-size", Target::BatchSize, &self.batch_size),
            ("--optimizer", Target::Optimizer, &self.optimizer),
            ("--seed", Target::Seed, &self.seed),
        ];
        for (flag, target, text) in plain {
            if let Some(text) = text {
                space.add(flag, target, text)?;
            }
        }
        space.add_layer_rules(&self.layer_lr)?;
        space.add_freeze_rules(&self.freeze)?;
        Ok(space)
    }
}

impl SweepStartArgs {
    pub fn stopping_rule(&self) -> StoppingRule {
        StoppingRule {
            median: !self.no_early_stop,
            min_finished_trials: self.min_finished_trials,
            warmup_epochs: self.warmup_epochs,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command, SweepCommand};
    use clap::Parser;

    fn sweep(argv: &[&str]) -> Result<super::SweepArgs, clap::Error> {
        let mut full = vec!["strata", "sweep"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full)?.command {
            Command::Sweep(args) => Ok(*args),
            _ => panic!("not sweep"),
        }
    }

    #[test]
    fn a_sweep_takes_start_flags_as_lists_and_show_takes_an_id() {
        let args = sweep(&[
            "--dataset",
            "moons",
            "--lr",
            "1e-3,1e-2",
            "--layer-lr",
            "layer0=1e-4,1e-3",
            "--layer-lr",
            "head=x2",
        ])
        .unwrap();
        assert!(args.show.is_none());
        let space = args.start.swept.space().unwrap();
        let swept: Vec<&str> = space.swept().map(|s| s.name.as_str()).collect();
        assert_eq!(swept, ["lr", "layer0"]);
        assert_eq!(space.grid().unwrap().len(), 4);
        assert_eq!(args.start.stopping_rule(), Default::default());

        let args = sweep(&["show", "abc"]).unwrap();
        assert!(matches!(args.show, Some(SweepCommand::Show(ref s)) if s.sweep == "abc"));
        for bad in [
            &["show"][..],
            &["show", "abc", "--lr", "1e-3"],
            &["--lr", "1e-3"],
        ] {
            assert_eq!(sweep(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let cli =
            Cli::try_parse_from(["strata", "--addr", "a:1", "--addr", "b:2", "info"]).unwrap();
        assert_eq!(cli.global.addr, ["a:1", "b:2"]);
    }
}
