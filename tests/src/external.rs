//! Runs logged from outside, as a training loop logs them: the requests, and a helper that logs a
//! run's epochs in batches through the generated client.

use strata_client::StrataGrpc;
use strata_proto::{
    create_run_request::Task, epoch_record::ValMetric, CreateRunRequest, EpochRecord,
    GroupEpochStats, GroupRate, LogEpochsRequest,
};

/// Groups `names`, each at `lr`, none frozen: a run's groups as its client declares them.
pub fn groups(names: &[&str], lr: f64) -> Vec<GroupRate> {
    names
        .iter()
        .map(|name| GroupRate {
            name: name.to_string(),
            lr,
            frozen: None,
        })
        .collect()
}

/// An epoch's statistics of groups `names`: each at `lr`, moving `update_ratio` of its weights,
/// with gradient norm 0.5 and weight norm 3.
pub fn group_stats(names: &[&str], lr: f64, update_ratio: f64) -> Vec<GroupEpochStats> {
    names
        .iter()
        .map(|name| GroupEpochStats {
            name: name.to_string(),
            lr,
            grad_norm: 0.5,
            weight_norm: 3.0,
            update_ratio,
            frozen: false,
        })
        .collect()
}

/// A classification of 10 classes with two groups, `body` and `head`.
pub fn create_request(name: &str) -> CreateRunRequest {
    CreateRunRequest {
        name: name.into(),
        tags: vec!["ext".into()],
        hyperparameters: [("optimizer".to_string(), "sgd".to_string())].into(),
        dataset: "mnist (torchvision)".into(),
        model: "two-layer mlp".into(),
        groups: groups(&["body", "head"], 1e-2),
        task: Some(Task::Classes(10)),
        parameter_count: 1234,
        train_rows: 640,
        val_rows: 160,
        steps_per_epoch: 20,
        client_key: String::new(),
    }
}

/// Epoch `n` of a run that learns: losses falling from ln 10.
pub fn epoch(n: u32) -> EpochRecord {
    let loss = 2.3 / f64::from(n).sqrt();
    EpochRecord {
        epoch: n,
        train_loss: loss,
        val_loss: loss * 1.05,
        val_metric: Some(ValMetric::ValAccuracy((0.1 + 0.08 * f64::from(n)).min(1.0))),
        duration_ms: 10.0,
        samples_per_sec: 6400.0,
        groups: group_stats(&["body", "head"], 1e-2, 2e-2),
        extra: Default::default(),
        no_validation: false,
    }
}

/// Creates a run named `name` and logs epochs 1..=`epochs` in batches of `batch`; returns its id.
/// Creates the run `request` describes; its id.
pub async fn create(grpc: &mut StrataGrpc, request: CreateRunRequest) -> String {
    grpc.create_run(request)
        .await
        .expect("CreateRun")
        .into_inner()
        .run
        .expect("a run")
        .id
}

pub async fn log_run(grpc: &mut StrataGrpc, name: &str, epochs: u32, batch: u32) -> String {
    let id = create(grpc, create_request(name)).await;
    let mut from = 1;
    while from <= epochs {
        let to = (from + batch - 1).min(epochs);
        grpc.log_epochs(LogEpochsRequest {
            run: id.clone(),
            epochs: (from..=to).map(epoch).collect(),
        })
        .await
        .expect("LogEpochs");
        from = to + 1;
    }
    id
}
