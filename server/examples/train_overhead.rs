//! What training through Strata costs over the same loop written directly against tch.
//!
//! Trains the same MLP on the same data with Adam twice — once through Strata's worker (per-group
//! rates, sampled gradient norms and progress, per-epoch validation, group statistics, flushed
//! epoch records and checkpoints), once as a hand-written tch loop (forward, loss, backward, step,
//! validation) — and prints samples per second for each, best of three; then Strata again with
//! 100 watchers subscribed to the run's live events.
//!
//! ```sh
//! cargo run --release -p strata-server --example train_overhead
//! ```

use std::{sync::atomic::AtomicU8, time::Instant};

use strata_server::{
    domain::{BatchProgress, DataFacts, EpochMetrics, RunConfig, RunEvent, RunId, RunRecord},
    error::Result,
    spec::RunSpec,
    store::Store,
    train::{
        self,
        data::{build_dataset, SeededRng},
        worker::{Outcome, RunSink, TrainJob},
    },
};
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

const EPOCHS: u32 = 5;
const REPEATS: usize = 3;

fn config() -> RunConfig {
    RunConfig {
        dataset: "moons".into(),
        samples: Some(20_000),
        model: "mlp:128,128".into(),
        lr: Some(1e-3),
        epochs: Some(EPOCHS),
        batch_size: Some(64),
        seed: Some(1),
        ..Default::default()
    }
}

/// What the run manager does with what a run reports: store each epoch durably, then broadcast.
struct StoreThenBroadcast<'a> {
    id: RunId,
    store: &'a Store,
    events: tokio::sync::broadcast::Sender<RunEvent>,
}

impl RunSink for StoreThenBroadcast<'_> {
    fn data_loaded(&self, facts: &DataFacts) -> Result<()> {
        self.store
            .update_run(self.id, |run| run.facts = facts.clone())?;
        Ok(())
    }

    fn epoch_finished(&self, epoch: &EpochMetrics) -> Result<()> {
        self.store.put_epoch(self.id, epoch)?;
        let _ = self.events.send(RunEvent::Epoch(epoch.clone()));
        Ok(())
    }

    fn progress(&self, progress: BatchProgress) {
        let _ = self.events.send(RunEvent::Progress(progress));
    }
}

/// Trains through Strata's worker with `watchers` live subscribers draining its events.
fn through_strata_watched(spec: &RunSpec, watchers: usize) -> f64 {
    let prepared = train::prepare_run(spec.clone()).expect("a valid spec");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(dir.path()).expect("a store");
    let (events, _) = tokio::sync::broadcast::channel(256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for _ in 0..watchers {
        let mut receiver = events.subscribe();
        runtime.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            // Lagging is fine (the daemon's watchers re-read epochs); stop when the run ends.
            while !matches!(receiver.recv().await, Err(RecvError::Closed)) {}
        });
    }
    let stop = AtomicU8::new(0);
    let id = store.next_run_id();
    let record = RunRecord::queued(
        id,
        prepared.spec.config.clone(),
        Vec::new(),
        facts_unknown(),
    );
    store.put_run(&record).expect("a run");
    let sink = StoreThenBroadcast {
        id,
        store: &store,
        events,
    };
    let job = TrainJob {
        run_id: id,
        spec: &prepared.spec,
        resolved: &prepared.resolved,
        device: Device::Cpu,
        record,
        kept_epochs: Vec::new(),
        sink: &sink,
        stop: &stop,
        checkpoint_dir: dir.path().join("checkpoints"),
        keep_checkpoints: 2,
        resume_after_epoch: 0,
        init_from: None,
    };
    let started = Instant::now();
    let outcome = train::worker::train(&job);
    let seconds = started.elapsed().as_secs_f64();
    assert!(matches!(outcome, Outcome::Completed), "{outcome:?}");
    seconds
}

fn facts_unknown() -> DataFacts {
    DataFacts::of_task(strata_server::domain::TaskFacts::Classification { classes: 2 })
}

fn hand_written(spec: &RunSpec) -> f64 {
    let data = build_dataset(&spec.dataset, spec.seed, Device::Cpu, None).expect("data");
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::linear(&root / "layer0", 2, 128, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "layer1", 128, 128, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "head", 128, 2, Default::default()));
    let mut optimizer = nn::Adam::default().build(&vs, 1e-3).expect("adam");
    let rows = data.train_len();
    let batch = i64::from(spec.batch_size);
    let started = Instant::now();
    for epoch in 1..=EPOCHS {
        let order =
            Tensor::from_slice(&SeededRng::new(u64::from(epoch)).permutation(rows as usize));
        let mut loss_sum = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let mut start = 0;
        while start < rows {
            let len = batch.min(rows - start);
            let idx = order.narrow(0, start, len);
            let loss = net
                .forward(&data.train_x.index_select(0, &idx))
                .cross_entropy_for_logits(&data.train_y.index_select(0, &idx));
            optimizer.backward_step(&loss);
            loss_sum += loss.detach() * len as f64;
            start += len;
        }
        let _train_loss = loss_sum.double_value(&[]) / rows as f64;
        let _val_loss = tch::no_grad(|| {
            net.forward(&data.val_x)
                .cross_entropy_for_logits(&data.val_y)
                .double_value(&[])
        });
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    tch::set_num_threads(1);
    let spec = RunSpec::try_from(config()).expect("a valid config");
    let rows = build_dataset(&spec.dataset, spec.seed, Device::Cpu, None)
        .expect("data")
        .train_len();
    let samples = rows as f64 * f64::from(EPOCHS);
    let best =
        |f: &dyn Fn(&RunSpec) -> f64| (0..REPEATS).map(|_| f(&spec)).fold(f64::INFINITY, f64::min);
    let tch_seconds = best(&hand_written);
    let strata_seconds = best(&|spec| through_strata_watched(spec, 0));
    let watched_seconds = best(&|spec| through_strata_watched(spec, 100));
    println!("{rows} training rows × {EPOCHS} epochs, mlp:128,128, Adam, batch 64, 1 thread, best of {REPEATS}");
    println!(
        "hand-written tch loop: {:>10.0} samples/s",
        samples / tch_seconds
    );
    println!(
        "through Strata:        {:>10.0} samples/s",
        samples / strata_seconds
    );
    println!(
        "  with 100 watchers:   {:>10.0} samples/s",
        samples / watched_seconds
    );
    println!(
        "overhead:              {:>+9.1}%",
        (strata_seconds / tch_seconds - 1.0) * 100.0
    );
}
