//! The labelled corpus (`tests/corpus/runs.json`): real runs on tabular, image, regression,
//! TorchScript and fine-tuning setups, trained by a real daemon, each with the verdict (and some
//! group diagnoses) a practitioner would give its curves, written down with the reason before the
//! analysis was made to agree. Every run must get one of its accepted verdicts.
//!
//! Each run trains at seed 1. With `STRATA_CORPUS_SEEDS=1,2,3,...` every run also trains at those
//! seeds and the test prints a table of what each got (a different CPU behaves like a different
//! seed, so an entry is only as good as its agreement across seeds); the assertions still apply to
//! every seed. `STRATA_CORPUS_ONLY=name,...` runs just those entries (and what they start from).

use std::{collections::BTreeMap, io::Write, path::Path, process::Command};

use serde_json::Value;
use strata_e2e::{show, start_with_flags, watch_to_end, Daemon};
use strata_rng::SplitMix64;

/// A 10-class tabular set: 64 features around a random centre per class, unit noise. Hard enough
/// that a good model gets about 85–95 % and a uniform guess 10 %.
fn csv10(path: &Path, rows: usize, seed: u64) {
    let mut centres = SplitMix64::new(7);
    let centre: Vec<Vec<f64>> = (0..10)
        .map(|_| (0..64).map(|_| 0.45 * centres.normal()).collect())
        .collect();
    let mut rng = SplitMix64::new(seed);
    let mut text = (0..64).map(|i| format!("f{i},")).collect::<String>() + "class\n";
    for row in 0..rows {
        let class = row % 10;
        for value in &centre[class] {
            text.push_str(&format!("{:.4},", value + rng.normal()));
        }
        text.push_str(&format!("{class}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// A regression whose target (the last column, no `--label`) has a variance of about 3e-4.
fn csv_small_targets(path: &Path) {
    let mut rng = SplitMix64::new(11);
    let mut text = String::from("a,b,c,d,e,f,g,h,target\n");
    for _ in 0..2000 {
        let x: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        let y = 0.01 * (x[0].sin() + x[1] * x[2] + 0.5 * x[3]) + 0.002 * rng.normal();
        for v in &x {
            text.push_str(&format!("{v:.5},"));
        }
        text.push_str(&format!("{y:.7}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn idx_bytes(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(values);
    bytes
}

/// 8×8 "digits" of 10 classes, each a noisy copy of its class's random template: train and
/// t10k files, as MNIST is laid out.
fn digits(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut templates = SplitMix64::new(5);
    let template: Vec<Vec<bool>> = (0..10)
        .map(|_| (0..64).map(|_| templates.uniform() < 0.4).collect())
        .collect();
    let mut rng = SplitMix64::new(6);
    for (prefix, count) in [("train", 1000usize), ("t10k", 200)] {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for i in 0..count {
            let class = i % 10;
            for &lit in &template[class] {
                let base = if lit { 170.0 } else { 50.0 };
                pixels.push((base + 55.0 * rng.normal()).clamp(0.0, 255.0) as u8);
            }
            labels.push(class as u8);
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx_bytes(&[count as u32, 8, 8], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx_bytes(&[count as u32], &labels),
        )
        .unwrap();
    }
}

/// A TorchScript MLP (64 → 32 → 10) scripted by the project's PyTorch, or why not.
fn torchscript_mlp(path: &Path) -> Result<(), String> {
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.torch");
    if !torch.join("torch").is_dir() {
        return Err(format!("{} holds no PyTorch", torch.display()));
    }
    let script = path.with_extension("py");
    std::fs::write(
        &script,
        r#"
import sys, torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 32)
        self.fc2 = torch.nn.Linear(32, 10)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
"#,
    )
    .unwrap();
    let output = Command::new("python3")
        .arg(&script)
        .arg(path)
        .env("PYTHONPATH", &torch)
        .output()
        .map_err(|e| format!("python3 did not run: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(())
}

struct Entry {
    name: String,
    why: String,
    flags: Vec<String>,
    expect: Vec<String>,
    groups: BTreeMap<String, Vec<String>>,
}

fn entries() -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/runs.json");
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    corpus["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            assert!(
                run["why"].as_str().is_some_and(|w| !w.is_empty()),
                "{run}: every entry says why"
            );
            let expect = strings(&run["expect"]);
            assert!(!expect.is_empty(), "{run}");
            if expect.len() > 1 {
                assert!(
                    run["argument"].as_str().is_some(),
                    "{run}: an entry accepting several verdicts writes down the argument"
                );
            }
            Entry {
                name: run["name"].as_str().unwrap().to_string(),
                why: run["why"].as_str().unwrap().to_string(),
                flags: strings(&run["flags"]),
                expect,
                groups: run["groups"]
                    .as_object()
                    .map(|g| g.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// `{run:NAME}` in an entry's flags.
fn depends_on(entry: &Entry) -> Option<String> {
    entry.flags.iter().find_map(|f| {
        f.strip_prefix("{run:")
            .and_then(|rest| rest.strip_suffix('}'))
            .map(str::to_string)
    })
}

/// A loss for the table: three decimals, or three significant digits when small.
fn short(value: f64) -> String {
    if value != 0.0 && value.abs() < 0.01 {
        format!("{value:.2e}")
    } else {
        format!("{value:.3}")
    }
}

struct Outcome {
    name: String,
    seed: u64,
    verdict: String,
    groups: Vec<(String, String)>,
    /// Each group's judged per-step update ratio, for the table.
    ratios: Vec<f64>,
    reason: String,
    curve: String,
}

fn outcome(daemon: &Daemon, name: &str, seed: u64, id: &str) -> Outcome {
    let (code, _) = watch_to_end(daemon, id);
    let shown = show(daemon, id);
    let analysis = &shown["analysis"];
    let curve = shown["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                short(e["train_loss"].as_f64().unwrap_or(f64::NAN)),
                short(e["val_loss"].as_f64().unwrap_or(f64::NAN))
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    Outcome {
        name: name.to_string(),
        seed,
        verdict: analysis["verdict"].as_str().unwrap_or("?").to_string(),
        groups: analysis["groups"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| {
                        (
                            g["name"].as_str().unwrap().to_string(),
                            g["diagnosis"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ratios: analysis["groups"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| g["update_ratio"].as_f64().unwrap_or(f64::NAN))
                    .collect()
            })
            .unwrap_or_default(),
        reason: format!(
            "{} (status {}, watch exit {code})",
            analysis["reason"].as_str().unwrap_or(""),
            shown["status"]
        ),
        curve,
    }
}

/// The corpus as a Markdown table (for the README): each run, what it was expected to get, what it
/// got at each seed, and why.
fn markdown(entries: &[Entry], outcomes: &[Outcome], seeds: &[u64]) -> String {
    let seeds_named = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut text =
        format!("| run | expected | got (seeds {seeds_named}) | why |\n|---|---|---|---|\n");
    for entry in entries {
        let got: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.name == entry.name)
            .map(|o| o.verdict.as_str())
            .collect();
        text.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            entry.name,
            entry.expect.join(" or "),
            got.join(", "),
            entry.why.replace('|', "\\|")
        ));
    }
    text
}

#[test]
fn every_corpus_run_gets_an_accepted_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    csv10(&files.join("csv10.csv"), 4000, 1);
    csv10(&files.join("csv10-small.csv"), 300, 2);
    csv_small_targets(&files.join("small-targets.csv"));
    digits(&files.join("digits"));
    let module = files.join("mlp.pt");
    let torchscript = torchscript_mlp(&module);
    if let Err(why) = &torchscript {
        println!("SKIPPED the TorchScript entries: {why}");
    }
    let substitute = |flag: &str| -> String {
        match flag {
            "{csv10}" => format!("csv:{}", files.join("csv10.csv").display()),
            "{csv10-small}" => format!("csv:{}", files.join("csv10-small.csv").display()),
            "{csv-small-targets}" => format!("csv:{}", files.join("small-targets.csv").display()),
            "{digits}" => format!("idx:{}", files.join("digits").display()),
            "{torchscript}" => format!("torchscript:{}", module.display()),
            other => other.to_string(),
        }
    };
    let seeds: Vec<u64> = std::env::var("STRATA_CORPUS_SEEDS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![1]);
    let only: Option<Vec<String>> = std::env::var("STRATA_CORPUS_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let mut entries = entries();
    if torchscript.is_err() {
        entries.retain(|e| !e.flags.iter().any(|f| f == "{torchscript}"));
    }
    if let Some(only) = &only {
        let wanted: Vec<String> = entries
            .iter()
            .filter(|e| only.contains(&e.name))
            .filter_map(depends_on)
            .chain(only.iter().cloned())
            .collect();
        entries.retain(|e| wanted.contains(&e.name));
    }
    assert!(
        entries.len() >= 30 || only.is_some(),
        "the corpus has at least 30 runs"
    );

    let daemon = Daemon::start_in(
        &tmp.path().join("data"),
        &["--allow-torchscript", "--max-concurrent-runs", "2"],
    );
    let mut outcomes: Vec<Outcome> = Vec::new();
    for &seed in &seeds {
        // Independent runs are queued at once; fine-tunes once their source has finished.
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for round in 0..2 {
            let mut started = Vec::new();
            for entry in &entries {
                if depends_on(entry).is_some() != (round == 1) {
                    continue;
                }
                let mut flags: Vec<String> = entry
                    .flags
                    .iter()
                    .map(|f| match f.strip_prefix("{run:") {
                        Some(rest) => ids[rest.trim_end_matches('}')].clone(),
                        None => substitute(f),
                    })
                    .collect();
                flags.extend(["--seed".to_string(), seed.to_string()]);
                flags.extend(["--name".to_string(), entry.name.clone()]);
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                let id = start_with_flags(&daemon, &flags);
                ids.insert(entry.name.clone(), id.clone());
                started.push((entry.name.clone(), id));
            }
            for (name, id) in started {
                outcomes.push(outcome(&daemon, &name, seed, &id));
            }
        }
    }

    let mut table = String::new();
    let mut wrong = Vec::new();
    for o in &outcomes {
        let entry = entries.iter().find(|e| e.name == o.name).unwrap();
        let mut problems = Vec::new();
        if !entry.expect.contains(&o.verdict) {
            problems.push(format!(
                "verdict {} (expected {:?})",
                o.verdict, entry.expect
            ));
        }
        for (group, accepted) in &entry.groups {
            match o.groups.iter().find(|(g, _)| g == group) {
                Some((_, d)) if accepted.contains(d) => {}
                found => problems.push(format!(
                    "group {group}: {:?} (expected {accepted:?})",
                    found.map(|(_, d)| d)
                )),
            }
        }
        let groups = o
            .groups
            .iter()
            .zip(&o.ratios)
            .map(|((g, d), r)| format!("{g}={d}({r:.1e})"))
            .collect::<Vec<_>>()
            .join(" ");
        table.push_str(&format!(
            "{} {:<32} seed {:<2} {:<13} {groups}\n      {}\n      {}\n",
            if problems.is_empty() { "  " } else { "XX" },
            o.name,
            o.seed,
            o.verdict,
            o.reason,
            o.curve
        ));
        if !problems.is_empty() {
            wrong.push(format!(
                "{} (seed {}): {}",
                o.name,
                o.seed,
                problems.join("; ")
            ));
        }
    }
    let _ = std::io::stdout().write_all(table.as_bytes());
    if let Ok(path) = std::env::var("STRATA_CORPUS_MARKDOWN") {
        std::fs::write(path, markdown(&entries, &outcomes, &seeds)).unwrap();
    }
    assert!(
        wrong.is_empty(),
        "{} of {} corpus runs got a verdict or diagnosis their entry does not accept:\n{}\n\n{table}",
        wrong.len(),
        outcomes.len(),
        wrong.join("\n")
    );
}
