//! Hostile input: hundreds of generated requests over every RPC — huge, empty and odd strings,
//! unicode and control characters, NaN and infinities, zero, negative and huge numbers, globs
//! built to be slow, special files, unknown enum values, malformed and oversized messages. For
//! each: the daemon answers (within a bound that only catches a hang), with a client-error code
//! and a message of sane length; it stays up, stores nothing, and its memory stays bounded.

use std::time::Duration;

use strata_e2e::Daemon;
use strata_proto::{
    strata_client::StrataClient, AnalysisThresholds, CancelRunRequest, CompareRunsRequest,
    DeleteRunRequest, GetRunRequest, GetServerInfoRequest, ListRunsRequest, ResumeRunRequest,
    RunConfig, StartRunRequest, WatchRunRequest,
};
use tonic::{transport::Channel, Code, Status};

/// Far beyond any honest answer time; only a hang (or a request that makes the daemon work for
/// minutes) exceeds it.
const ANSWER_BOUND: Duration = Duration::from_secs(60);
/// How much the daemon's resident memory may grow over the whole barrage.
const RSS_GROWTH_BOUND_KIB: u64 = 512 * 1024;
/// Longest error message the daemon may send (1 KiB and the "cut" marker).
const MAX_MESSAGE_BYTES: usize = 1100;

fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "\0".into(),
        "\u{7}\u{1b}[31mred\u{1b}[0m".into(),
        "\u{202e}txt.exe".into(),
        "é".into(),
        "😀".repeat(1000),
        "*".repeat(10_000) + "x",
        "*a".repeat(20) + "x=1e-3",
        "*a".repeat(60) + "x",
        "a".repeat(100_000),
        "[".into(),
        "[!]".into(),
        "layer0=NaN".into(),
        "layer0=1e400".into(),
        "head@0".into(),
        "warmup:1+".repeat(10_000) + "constant",
        "warmup:10+".into(),
        "step:0:0".into(),
        "{}%s%n%x".into(),
        "../../../../etc/passwd".into(),
        "csv:/etc/passwd".into(),
        "csv:/dev/zero".into(),
        "csv:/proc/self/environ".into(),
        "idx:/".into(),
        "torchscript:/etc/hostname".into(),
        "mlp:".to_string() + &"1,".repeat(10_000) + "1",
        "cuda:4096".into(),
        "-1".into(),
    ]
}

fn hostile_doubles() -> Vec<f64> {
    vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        -1.0,
        1e308,
        5e-324,
        1e-300,
        2.0,
    ]
}

fn hostile_u32s() -> Vec<u32> {
    vec![0, 1, u32::MAX, 1 << 31, 1 << 20]
}

fn base_config() -> RunConfig {
    RunConfig {
        dataset: "spirals".into(),
        samples: Some(120),
        model: "mlp:4".into(),
        epochs: Some(1),
        ..Default::default()
    }
}

/// Every StartRun variant: each text field with each hostile string, each number field with each
/// hostile number. All dry runs: an accepted one stores nothing either.
fn start_requests() -> Vec<(String, StartRunRequest)> {
    type SetText = fn(&mut StartRunRequest, String);
    let text_fields: Vec<(&str, SetText)> = vec![
        ("dataset", |r, s| config(r).dataset = s),
        ("val_dataset", |r, s| config(r).val_dataset = s),
        ("model", |r, s| config(r).model = s),
        ("optimizer", |r, s| config(r).optimizer = s),
        ("lr_slice", |r, s| config(r).lr_slice = s),
        ("schedule", |r, s| config(r).schedule = s),
        ("device", |r, s| config(r).device = s),
        ("label", |r, s| config(r).label = s),
        ("task", |r, s| config(r).task = s),
        ("init_from", |r, s| config(r).init_from = s),
        ("layer_lr", |r, s| config(r).layer_lr = vec![s]),
        ("freeze", |r, s| config(r).freeze = vec![s]),
        ("name", |r, s| r.name = s),
        ("tags", |r, s| r.tags = vec![s]),
    ];
    type SetDouble = fn(&mut RunConfig, f64);
    let double_fields: Vec<(&str, SetDouble)> = vec![
        ("noise", |c, v| c.noise = Some(v)),
        ("val_fraction", |c, v| c.val_fraction = Some(v)),
        ("lr", |c, v| c.lr = Some(v)),
        ("momentum", |c, v| {
            c.optimizer = "sgd".into();
            c.momentum = Some(v)
        }),
        ("weight_decay", |c, v| c.weight_decay = Some(v)),
        ("lr_decay", |c, v| c.lr_decay = Some(v)),
        ("clip_grad_norm", |c, v| c.clip_grad_norm = Some(v)),
    ];
    type SetU32 = fn(&mut RunConfig, u32);
    let u32_fields: Vec<(&str, SetU32)> = vec![
        ("samples", |c, v| c.samples = Some(v)),
        ("classes", |c, v| c.classes = Some(v)),
        ("epochs", |c, v| c.epochs = Some(v)),
        ("batch_size", |c, v| c.batch_size = Some(v)),
        ("progress_events_per_epoch", |c, v| {
            c.progress_events_per_epoch = Some(v)
        }),
    ];
    let dry = || StartRunRequest {
        config: Some(base_config()),
        dry_run: true,
        ..Default::default()
    };
    let mut requests = Vec::new();
    for (field, set) in &text_fields {
        for text in hostile_strings() {
            let mut request = dry();
            set(&mut request, text);
            requests.push((format!("StartRun {field}"), request));
        }
    }
    for (field, set) in &double_fields {
        for value in hostile_doubles() {
            let mut request = dry();
            set(config(&mut request), value);
            requests.push((format!("StartRun {field}={value}"), request));
        }
    }
    for (field, set) in &u32_fields {
        for value in hostile_u32s() {
            let mut request = dry();
            set(config(&mut request), value);
            requests.push((format!("StartRun {field}={value}"), request));
        }
    }
    let mut many_rules = dry();
    config(&mut many_rules).freeze = vec!["head".into(); 257];
    requests.push(("StartRun 257 freeze rules".into(), many_rules));
    let mut no_config = dry();
    no_config.config = None;
    requests.push(("StartRun without a config".into(), no_config));
    requests
}

fn config(request: &mut StartRunRequest) -> &mut RunConfig {
    request.config.get_or_insert_with(base_config)
}

fn thresholds_variants() -> Vec<AnalysisThresholds> {
    type SetDouble = fn(&mut AnalysisThresholds, f64);
    let fields: [SetDouble; 7] = [
        |t, v| t.near_best_fraction = Some(v),
        |t, v| t.diverged_ratio = Some(v),
        |t, v| t.unstable_fraction = Some(v),
        |t, v| t.unstable_jump = Some(v),
        |t, v| t.overfit_val_rise = Some(v),
        |t, v| t.overfit_gap = Some(v),
        |t, v| t.slow_improvement = Some(v),
    ];
    let mut variants = Vec::new();
    for set in fields {
        for value in hostile_doubles() {
            let mut thresholds = AnalysisThresholds::default();
            set(&mut thresholds, value);
            variants.push(thresholds);
        }
    }
    for min_epochs in hostile_u32s() {
        variants.push(AnalysisThresholds {
            min_epochs: Some(min_epochs),
            ..Default::default()
        });
    }
    variants
}

/// Codes a hostile request may get: it was the client's fault, or names nothing that exists.
/// Never INTERNAL, UNKNOWN or UNAVAILABLE.
fn assert_client_error(what: &str, status: &Status) {
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::NotFound | Code::OutOfRange | Code::FailedPrecondition
        ),
        "{what}: {:?} {}",
        status.code(),
        status.message()
    );
    assert!(
        status.message().len() <= MAX_MESSAGE_BYTES,
        "{what}: a {}-byte error message",
        status.message().len()
    );
}

/// Runs one call with the answer bound; an error must be a client error.
async fn expect_answer<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
) {
    match tokio::time::timeout(ANSWER_BOUND, call).await {
        Err(_) => panic!("{what}: no answer within {ANSWER_BOUND:?}"),
        Ok(Ok(_)) => {}
        Ok(Err(status)) => assert_client_error(what, &status),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("stratad is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

async fn assert_alive(daemon: &Daemon, grpc: &mut StrataClient<Channel>, after: usize) {
    assert!(
        std::path::Path::new(&format!("/proc/{}", daemon.pid())).exists(),
        "stratad died after {after} hostile requests; log:\n{}",
        daemon.log()
    );
    let info = tokio::time::timeout(ANSWER_BOUND, grpc.get_server_info(GetServerInfoRequest {}))
        .await
        .expect("the daemon answers")
        .expect("the daemon serves");
    assert!(!info.into_inner().version.is_empty());
}

#[tokio::test]
async fn hundreds_of_hostile_requests_leave_the_daemon_up_bounded_and_empty() {
    let daemon = Daemon::start();
    let channel = Channel::from_shared(daemon.addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = StrataClient::new(channel.clone());
    // Warm up (libtorch's first model) before taking the memory baseline.
    grpc.start_run(StartRunRequest {
        config: Some(base_config()),
        dry_run: true,
        ..Default::default()
    })
    .await
    .expect("a plain dry run is accepted");
    let rss_before = rss_kib(daemon.pid());
    let mut sent = 0usize;

    for (what, request) in start_requests() {
        expect_answer(&what, grpc.start_run(request)).await;
        sent += 1;
        if sent.is_multiple_of(100) {
            assert_alive(&daemon, &mut grpc, sent).await;
        }
    }

    let mut ids = hostile_strings();
    ids.extend([
        "0".into(),
        "ffffffffffffffff".into(),
        "ffffffffffffffff0".into(),
    ]);
    for id in &ids {
        let run = id.clone();
        expect_answer(
            "GetRun",
            grpc.get_run(GetRunRequest {
                run: run.clone(),
                thresholds: None,
                from_epoch: 0,
            }),
        )
        .await;
        expect_answer(
            "CancelRun",
            grpc.cancel_run(CancelRunRequest {
                run: run.clone(),
                reason: String::new(),
            }),
        )
        .await;
        expect_answer(
            "DeleteRun",
            grpc.delete_run(DeleteRunRequest { run: run.clone() }),
        )
        .await;
        for epochs in [0, u32::MAX] {
            expect_answer(
                "ResumeRun",
                grpc.resume_run(ResumeRunRequest {
                    run: run.clone(),
                    epochs,
                }),
            )
            .await;
        }
        for from_epoch in [0, u32::MAX] {
            expect_answer(
                "WatchRun",
                grpc.watch_run(WatchRunRequest {
                    run: run.clone(),
                    from_epoch,
                }),
            )
            .await;
        }
        expect_answer(
            "CompareRuns",
            grpc.compare_runs(CompareRunsRequest {
                runs: vec![run.clone()],
                thresholds: None,
            }),
        )
        .await;
        expect_answer(
            "ListRuns",
            grpc.list_runs(ListRunsRequest {
                tag: run.clone(),
                // An out-of-range enum value: refused with a message, never a crash.
                verdict: run.len() as i32 * 7919 + 9,
                ..Default::default()
            }),
        )
        .await;
        sent += 9;
    }
    for thresholds in thresholds_variants() {
        expect_answer(
            "GetRun thresholds",
            grpc.get_run(GetRunRequest {
                run: "0".into(),
                thresholds: Some(thresholds),
                from_epoch: 0,
            }),
        )
        .await;
        expect_answer(
            "CompareRuns thresholds",
            grpc.compare_runs(CompareRunsRequest {
                runs: vec!["0".into()],
                thresholds: Some(thresholds),
            }),
        )
        .await;
        sent += 2;
    }
    for runs in [vec![], vec!["a".to_string(); 2000], vec![String::new(); 3]] {
        expect_answer(
            "CompareRuns list",
            grpc.compare_runs(CompareRunsRequest {
                runs,
                thresholds: None,
            }),
        )
        .await;
        sent += 1;
    }
    for status in [-1, 99, i32::MAX] {
        expect_answer(
            "ListRuns status",
            grpc.list_runs(ListRunsRequest {
                status,
                limit: u32::MAX,
                ..Default::default()
            }),
        )
        .await;
        sent += 1;
    }
    sent += malformed_messages(&channel).await;
    // Over the 4 MiB request limit.
    let huge = StartRunRequest {
        name: "x".repeat(5 << 20),
        dry_run: true,
        ..Default::default()
    };
    expect_answer("StartRun 5 MiB", grpc.start_run(huge)).await;
    sent += 1;

    // Within every limit one by one, but activations no host has room for: refused up front.
    let mut greedy = StartRunRequest {
        config: Some(base_config()),
        dry_run: true,
        ..Default::default()
    };
    let config = greedy.config.as_mut().unwrap();
    config.model = "mlp:65536,65536".into();
    config.batch_size = Some(1 << 20);
    let status = grpc.start_run(greedy).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("activations"), "{status:?}");
    sent += 1;

    assert!(sent >= 300, "only {sent} hostile requests");
    assert_alive(&daemon, &mut grpc, sent).await;
    let rss_after = rss_kib(daemon.pid());
    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND_KIB,
        "stratad grew from {rss_before} KiB to {rss_after} KiB over {sent} hostile requests"
    );
    let stored = grpc
        .list_runs(ListRunsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        stored.runs.is_empty(),
        "hostile requests stored runs: {:?}",
        stored.runs
    );
    let folders = std::fs::read_dir(daemon.data_dir.join("runs")).map_or(0, |d| d.count());
    assert_eq!(folders, 0, "hostile requests left run folders");
    println!("{sent} hostile requests; RSS {rss_before} → {rss_after} KiB");
}

/// Messages that are not valid protobuf for their call: a field with the wrong wire type, and a
/// string that is not UTF-8. Each must be INVALID_ARGUMENT.
async fn malformed_messages(channel: &Channel) -> usize {
    #[derive(Clone, PartialEq, prost::Message)]
    struct WrongWireType {
        #[prost(fixed64, tag = "1")]
        first: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct NotUtf8 {
        #[prost(bytes = "vec", tag = "1")]
        first: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Anything {}

    let methods = [
        "StartRun",
        "GetRun",
        "ListRuns",
        "CancelRun",
        "CompareRuns",
        "ResumeRun",
        "DeleteRun",
        "WatchRun",
        "LrFind",
    ];
    let mut sent = 0;
    for method in methods {
        let path: tonic::codegen::http::uri::PathAndQuery =
            format!("/strata.v1.Strata/{method}").parse().unwrap();
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<WrongWireType, Anything>::default();
        let answer = grpc
            .unary(
                tonic::Request::new(WrongWireType { first: 7 }),
                path.clone(),
                codec,
            )
            .await;
        let status = answer.expect_err("a message of the wrong shape is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{method}: {status:?}");

        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<NotUtf8, Anything>::default();
        let answer = grpc
            .unary(
                tonic::Request::new(NotUtf8 {
                    first: vec![0xff, 0xfe, 0x80],
                }),
                path,
                codec,
            )
            .await;
        let status = answer.expect_err("a string that is not UTF-8 is refused");
        // GetServerInfo-like calls may ignore field 1; every call here has a string field 1.
        assert_eq!(status.code(), Code::InvalidArgument, "{method}: {status:?}");
        sent += 2;
    }
    sent
}
