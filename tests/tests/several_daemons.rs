//! One CLI over several daemons: three real daemons on loopback, each with its own runs, asked
//! through `--addr` (repeated), a daemons file and a `dns:` name; one killed while the others
//! still answer.

use std::process::{Command, Stdio};

use serde_json::Value;
use strata_e2e::{bin, clear_strata_env, start_run, watch_to_end, CliOutput, Daemon};
use strata_proto::{create_run_request::Task, CreateRunRequest, GroupRate};

/// `strata ARGS` with no address of the harness's own: the test names the daemons.
fn strata(args: &[&str], envs: &[(&str, &str)]) -> CliOutput {
    let mut command = Command::new(bin("strata"));
    clear_strata_env(&mut command);
    // No daemons file of the machine's user may be read.
    let home = tempfile::tempdir().expect("a temporary home");
    let output = command
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("strata runs");
    CliOutput::from(output)
}

/// `--addr A --addr B ...` followed by `args`.
fn over(daemons: &[&Daemon], args: &[&str]) -> CliOutput {
    let mut argv: Vec<&str> = Vec::new();
    for daemon in daemons {
        argv.extend(["--addr", daemon.addr.as_str()]);
    }
    argv.extend_from_slice(args);
    strata(&argv, &[])
}

/// The name a daemon given by `--addr http://HOST:PORT` goes by.
fn name_of(daemon: &Daemon) -> String {
    strata_client::DaemonSpec::from_addr(&daemon.addr, None, None).name
}

/// A finished two-epoch run on `daemon`.
fn finished_run(daemon: &Daemon, lr: &str) -> String {
    let id = start_run(daemon, &["--epochs", "2", "--lr", lr]);
    let (code, _) = watch_to_end(daemon, &id);
    assert_eq!(code, 0, "run {id} completes");
    id
}

fn ids(list: &Value) -> Vec<(String, String)> {
    list["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| {
            let field = |name: &str| run[name].as_str().unwrap_or_default().to_string();
            (field("id"), field("daemon"))
        })
        .collect()
}

#[test]
fn three_daemons_answer_as_one() {
    let daemons = [Daemon::start(), Daemon::start(), Daemon::start()];
    let all: Vec<&Daemon> = daemons.iter().collect();
    let runs: Vec<String> = daemons
        .iter()
        .zip(["1e-2", "3e-2", "1e-1"])
        .map(|(daemon, lr)| finished_run(daemon, lr))
        .collect();

    // list: every daemon's run, with its daemon, newest first.
    let list = over(&all, &["list", "--json"]).json();
    let mut listed = ids(&list);
    let created: Vec<i64> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["created_at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    listed.sort();
    let mut expected: Vec<(String, String)> = runs
        .iter()
        .zip(&daemons)
        .map(|(id, daemon)| (id.clone(), name_of(daemon).to_string()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(list["unreachable"], serde_json::json!([]));
    let table = over(&all, &["list"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.lines().next().unwrap().contains("DAEMON"));
    assert_eq!(table.stdout.lines().count(), 4, "{}", table.stdout);
    let limited = over(&all, &["list", "--json", "--limit", "2"]).json();
    assert_eq!(ids(&limited), ids(&list)[..2].to_vec(), "the newest two");

    // show and export find the run on the third daemon.
    let shown = over(&all, &["show", &runs[2][..6], "--json"]).json();
    assert_eq!(shown["id"], runs[2].as_str());
    assert_eq!(shown["daemon"], name_of(&daemons[2]));
    let export = over(&all, &["export", &runs[2], "--format", "csv"]);
    assert_eq!(export.code, 0, "{export:?}");
    assert_eq!(
        export.stdout,
        daemons[2]
            .strata(&["export", &runs[2], "--format", "csv"])
            .stdout,
        "the same CSV as from its own daemon"
    );
    for command in ["show", "watch", "cancel", "resume", "delete"] {
        let missing = over(&all, &[command, "zzzzzz"]);
        assert_eq!(missing.code, 1, "{command}: {missing:?}");
        assert!(
            missing.stderr.contains("no run matches 'zzzzzz'"),
            "{command}: {}",
            missing.stderr
        );
    }

    // compare: runs on two daemons, ranked by the best validation loss their daemons found.
    let compared = over(&all, &["compare", &runs[0], &runs[2], "--json"]).json();
    let ranked = compared["runs"].as_array().expect("runs");
    assert_eq!(ranked.len(), 2);
    let best = |run: &Value| run["best_val_loss"].as_f64().unwrap();
    assert!(best(&ranked[0]) <= best(&ranked[1]), "{compared}");
    assert_eq!(
        (ranked[0]["rank"].as_u64(), ranked[1]["rank"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(compared["best_run"], ranked[0]["id"]);
    for run in ranked {
        let id = run["id"].as_str().unwrap();
        let on = daemons
            .iter()
            .find(|d| d.strata(&["show", id, "--json"]).code == 0)
            .unwrap();
        assert_eq!(run["daemon"], name_of(on));
        let alone = strata_e2e::show(on, id);
        assert_eq!(
            run["best_val_loss"], alone["analysis"]["best_val_loss"],
            "the daemon's own analysis"
        );
    }
    assert!(
        compared["summary"].as_str().unwrap().contains(" is best"),
        "{compared}"
    );

    // info: every daemon with its load; start goes to a daemon with free slots.
    let info = over(&all, &["info", "--json"]).json();
    let infos = info["daemons"].as_array().expect("daemons");
    assert_eq!(infos.len(), 3);
    for entry in infos {
        // A run's slot is freed just after its end is streamed: it may still be held here.
        let count = |field: &str| entry[field].as_i64().unwrap();
        assert_eq!(count("max_concurrent_runs"), 1, "{entry}");
        assert!(
            count("running_runs") <= 1 && count("queued_runs") == 0,
            "{entry}"
        );
        assert_eq!(
            count("free_slots"),
            count("max_concurrent_runs") - count("running_runs") - count("queued_runs")
        );
    }
    let mut argv = vec!["start", "--json"];
    argv.extend_from_slice(strata_e2e::TINY_RUN);
    argv.extend(["--epochs", "1"]);
    let started = over(&all, &argv).json();
    let on = started["daemon"].as_str().expect("the daemon it went to");
    assert!(daemons.iter().any(|d| name_of(d) == on), "{started}");
}

#[test]
fn a_daemons_file_names_the_daemons() {
    let (alpha, beta) = (Daemon::start(), Daemon::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemons.toml");
    std::fs::write(
        &file,
        format!(
            "# Two daemons on this machine.\n[daemons.alpha]\naddr = \"{}\"\n\n[daemons.beta]\naddr = \"{}\"\n",
            alpha.addr, beta.addr
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let mut argv = vec!["--daemons", file, "start", "--on", "beta", "--json"];
    argv.extend_from_slice(strata_e2e::TINY_RUN);
    argv.extend(["--epochs", "1"]);
    let started = strata(&argv, &[]).json();
    assert_eq!(started["daemon"], "beta");
    let id = started["run_id"].as_str().unwrap();
    assert_eq!(
        beta.strata(&["show", id, "--json"]).code,
        0,
        "on beta itself"
    );

    // The same file through STRATA_DAEMONS lists the run on beta.
    let list = strata(&["list", "--json"], &[("STRATA_DAEMONS", file)]).json();
    assert_eq!(ids(&list), [(id.to_string(), "beta".to_string())]);
    let info = strata(&["info", "--json"], &[("STRATA_DAEMONS", file)]).json();
    let names: Vec<&str> = info["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["daemon"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    // A name no one configured, and a file that says the wrong thing, are usage errors.
    let unknown = strata(
        &[
            "--daemons",
            file,
            "start",
            "--on",
            "gamma",
            "--dataset",
            "xor",
        ],
        &[],
    );
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("alpha, beta"), "{}", unknown.stderr);
    std::fs::write(
        dir.path().join("bad.toml"),
        "[daemons.alpha]\nadress = \"x\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    let bad = strata(&["--daemons", bad.to_str().unwrap(), "list"], &[]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("adress"), "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
}

#[test]
fn one_daemon_down_the_others_still_answer() {
    let mut daemons = [Daemon::start(), Daemon::start(), Daemon::start()];
    let runs: Vec<String> = daemons
        .iter()
        .map(|daemon| finished_run(daemon, "1e-2"))
        .collect();
    let addrs: Vec<String> = daemons.iter().map(|d| d.addr.clone()).collect();
    let gone = name_of(&daemons[1]).to_string();
    daemons[1].signal_and_wait("KILL");
    let argv = |args: &[&str]| {
        let mut argv: Vec<&str> = Vec::new();
        for addr in &addrs {
            argv.extend(["--addr", addr.as_str()]);
        }
        argv.extend_from_slice(args);
        argv.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let owned = argv(args);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        strata(&refs, &[])
    };

    let list = run(&["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    let warnings: Vec<&str> = list.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", list.stderr);
    assert!(
        warnings[0].starts_with("warning: ") && warnings[0].contains(&gone),
        "{}",
        list.stderr
    );
    assert!(list.stdout.contains(&runs[0]) && list.stdout.contains(&runs[2]));
    assert!(!list.stdout.contains(&runs[1]));

    let json = run(&["list", "--json"]).json();
    assert_eq!(ids(&json).len(), 2);
    let unreachable = json["unreachable"].as_array().expect("unreachable");
    assert_eq!(unreachable.len(), 1);
    assert_eq!(unreachable[0]["daemon"], gone.as_str());
    assert!(unreachable[0]["error"]
        .as_str()
        .unwrap()
        .contains("cannot reach"));

    // A run only the lost daemon has: not found on the others, and says who could not be asked.
    let show = run(&["show", &runs[1]]);
    assert_eq!(show.code, 1, "{show:?}");
    let error = show.stderr.lines().last().unwrap();
    assert!(
        error.starts_with("error: ") && error.contains("could not be asked"),
        "{error}"
    );
    // The runs of the others are still shown.
    assert_eq!(
        run(&["show", &runs[2], "--json"]).json()["id"],
        runs[2].as_str()
    );

    // Every daemon down: an error, exit 1.
    for index in [0, 2] {
        daemons[index].signal_and_wait("KILL");
    }
    let none = run(&["list"]);
    assert_eq!(none.code, 1, "{none:?}");
    assert!(
        none.stderr.contains("cannot reach any daemon"),
        "{}",
        none.stderr
    );
}

#[test]
fn a_dns_name_stands_for_every_daemon_it_resolves_to() {
    let daemon = Daemon::start();
    let id = finished_run(&daemon, "1e-2");
    let port = daemon.addr.rsplit(':').next().unwrap();
    let dns = format!("dns:///localhost:{port}");
    let list = strata(&["--addr", &dns, "list", "--json"], &[]);
    // localhost may also resolve to ::1, where nothing listens: that one is only a warning.
    let json = list.json();
    let listed = ids(&json);
    assert_eq!(listed.len(), 1, "{json}");
    assert_eq!(listed[0].0, id);
    assert_eq!(listed[0].1, format!("127.0.0.1:{port}"));
}

/// A run logged from outside: no training, so many can be made quickly.
async fn logged_run(daemon: &Daemon) -> String {
    let request = CreateRunRequest {
        dataset: "made up".into(),
        model: "made up".into(),
        groups: vec![GroupRate {
            name: "head".into(),
            lr: 1e-2,
            frozen: None,
        }],
        task: Some(Task::Classes(2)),
        ..CreateRunRequest::default()
    };
    let mut grpc = daemon.client().await.grpc();
    let created = grpc.create_run(request).await.expect("a run is created");
    created.into_inner().run.expect("the run").id
}

/// A prefix of exactly one of `a` and exactly one of `b`.
fn prefix_of_one_each(a: &[String], b: &[String]) -> Option<String> {
    let count =
        |ids: &[String], prefix: &str| ids.iter().filter(|id| id.starts_with(prefix)).count();
    (1..=3).find_map(|len| {
        a.iter()
            .map(|id| id[..len].to_string())
            .find(|prefix| count(a, prefix) == 1 && count(b, prefix) == 1)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_of_runs_on_two_daemons_is_an_ambiguity_naming_both() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    // Ids are scrambled, so a few runs on each daemon share a first character with one on the
    // other; 40 each make missing one all but impossible.
    let prefix = loop {
        assert!(
            on_a.len() < 40,
            "no shared prefix among {on_a:?} and {on_b:?}"
        );
        on_a.push(logged_run(&a).await);
        on_b.push(logged_run(&b).await);
        if let Some(prefix) = prefix_of_one_each(&on_a, &on_b) {
            break prefix;
        }
    };
    let show = over(&[&a, &b], &["show", &prefix]);
    assert_eq!(show.code, 1, "{show:?}");
    let error = show.stderr.trim();
    assert!(
        error.starts_with("error: ") && error.contains("several daemons"),
        "{error}"
    );
    for (daemon, ids) in [(&a, &on_a), (&b, &on_b)] {
        let id = ids.iter().find(|id| id.starts_with(&prefix)).unwrap();
        assert!(
            error.contains(&format!("{id} on {}", name_of(daemon))),
            "{error}"
        );
    }
    let compare = over(&[&a, &b], &["compare", &prefix, &on_a[0]]);
    assert_eq!(compare.code, 1, "{compare:?}");
    assert!(
        compare.stderr.contains("several daemons"),
        "{}",
        compare.stderr
    );
    // The whole id is not ambiguous.
    let id = on_b.iter().find(|id| id.starts_with(&prefix)).unwrap();
    let shown = over(&[&a, &b], &["show", id, "--json"]).json();
    assert_eq!(shown["daemon"], name_of(&b));
}
