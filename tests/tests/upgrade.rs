//! A data dir written by an older stratad opens in today's: every run's config, rate table,
//! status, times and every epoch's numbers read back exactly as that binary's CLI printed them
//! (`tests/fixtures/v1-data-dir/expected/`, see its README); compare works across them; the runs
//! a SIGKILL left unfinished, and a cancelled one, resume from what was stored; a fine-tune loads
//! a fixture run's parameters; and `stratad check` finds the copy healthy afterwards. The daemon
//! runs on a copy: the fixture is never written.
//!
//! The fields compared are listed once, here at the top, by the name the fixture gives them and
//! the name today's CLI gives them: when a field is renamed, change its `today`. Fields the JSON
//! gains are ignored. The analysis is not compared (it is being reworked), only that it has a
//! verdict.

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Number, Value};
use strata_e2e::{copy_dir, show, start_with_flags, stratad_command, watch_to_end, Daemon};

/// One field of the CLI's JSON: its name in the fixture, and its name today.
struct Field {
    fixture: &'static str,
    today: &'static str,
}

/// A field not renamed since the fixture was written.
const fn same(name: &'static str) -> Field {
    Field {
        fixture: name,
        today: name,
    }
}

// A run, in `list --json` rows and at the top of `show --json`.
const ID: Field = same("id");
const NAME: Field = same("name");
const TAGS: Field = same("tags");
const STATUS: Field = same("status");
const REASON: Field = same("reason");
const EPOCHS_DONE: Field = same("epochs_done");
const RESUMES: Field = same("resumes");
const QUEUE_POSITION: Field = same("queue_position");
const CREATED_AT_MS: Field = same("created_at_ms");
const STARTED_AT_MS: Field = same("started_at_ms");
/// Also stamped by the restart that marks a run left unfinished `interrupted`: the fixture's is
/// the older binary's restart, today's is this test's.
const FINISHED_AT_MS: Field = same("finished_at_ms");

/// `list --json`: its array of runs, and each row's fields.
const LIST_RUNS: Field = same("runs");
const LIST_FIELDS: &[Field] = &[
    ID,
    NAME,
    TAGS,
    STATUS,
    REASON,
    same("dataset"),
    same("model"),
    same("epochs"),
    EPOCHS_DONE,
    RESUMES,
    QUEUE_POSITION,
    CREATED_AT_MS,
    STARTED_AT_MS,
    FINISHED_AT_MS,
];

/// `show --json`: the run's own fields...
const SHOW_FIELDS: &[Field] = &[
    ID,
    NAME,
    TAGS,
    STATUS,
    REASON,
    same("device"),
    SHOW_VAL_METRIC,
    same("parameter_count"),
    EPOCHS_DONE,
    RESUMES,
    QUEUE_POSITION,
    CREATED_AT_MS,
    STARTED_AT_MS,
    FINISHED_AT_MS,
];
/// ...its config, every field of it...
const SHOW_CONFIG: Field = same("config");
const CONFIG_EPOCHS: Field = same("epochs");
const CONFIG_INIT_FROM: Field = same("init_from");
const CONFIG_FIELDS: &[Field] = &[
    same("dataset"),
    same("samples"),
    same("noise"),
    same("task"),
    same("classes"),
    same("label"),
    same("val_dataset"),
    same("val_fraction"),
    same("model"),
    same("device"),
    CONFIG_EPOCHS,
    same("batch_size"),
    same("seed"),
    same("optimizer"),
    same("lr"),
    same("layer_lr"),
    same("lr_decay"),
    same("lr_slice"),
    same("momentum"),
    same("weight_decay"),
    same("clip_grad_norm"),
    same("schedule"),
    same("freeze"),
    CONFIG_INIT_FROM,
    same("progress_events_per_epoch"),
];
/// ...its parameter table: the group and rate each parameter trains at...
const SHOW_PARAMETERS: Field = same("parameters");
const PARAMETER_NAME: Field = same("name");
const PARAMETER_GROUP: Field = same("group");
const PARAMETER_LR: Field = same("lr");
const PARAMETER_INIT: Field = same("init");
const PARAMETER_FIELDS: &[Field] = &[
    PARAMETER_NAME,
    same("shape"),
    PARAMETER_GROUP,
    PARAMETER_LR,
    same("frozen_until"),
    PARAMETER_INIT,
];
/// ...its epochs, with each epoch's layer groups...
const SHOW_EPOCHS: Field = same("epochs");
const EPOCH_NUMBER: Field = same("epoch");
const TRAIN_LOSS: Field = same("train_loss");
const EPOCH_FIELDS: &[Field] = &[
    EPOCH_NUMBER,
    TRAIN_LOSS,
    same("val_loss"),
    same("gap"),
    same("duration_ms"),
    same("samples_per_sec"),
];
const EPOCH_GROUPS: Field = same("groups");
const GROUP_NAME: Field = same("name");
const GROUP_LR: Field = same("lr");
const GROUP_FIELDS: &[Field] = &[
    GROUP_NAME,
    GROUP_LR,
    same("grad_norm"),
    same("weight_norm"),
    same("update_ratio"),
    same("frozen"),
];
/// ...the epoch's validation metric, named today for what it is: accuracy for a classifier,
/// R² (which format 1 kept under `val_accuracy` too) for a regression, as the run's `val_metric`
/// says...
const SHOW_VAL_METRIC: Field = same("val_metric");
fn epoch_metric_field(val_metric: &Value) -> Field {
    match val_metric.as_str() {
        Some("r2") => Field {
            fixture: "val_accuracy",
            today: "val_r2",
        },
        _ => same("val_accuracy"),
    }
}
/// ...and its analysis, of which only the verdict's presence is checked.
const SHOW_ANALYSIS: Field = same("analysis");
const ANALYSIS_VERDICT: Field = same("verdict");

/// The fixture's runs resumed here (by name), and the epochs each trains to in total (`None`: its
/// configured epochs). The one a SIGKILL caught training and the cancelled one have 5 and 2 of 50
/// long epochs: they train two and one more. The one that waited in the queue trains its 2.
const RESUMED: &[(&str, Option<u64>)] = &[
    ("interrupted", Some(7)),
    ("queued", None),
    ("cancelled", Some(3)),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1-data-dir")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since_epoch.as_millis() as u64
}

/// `value`'s field by its name today (`Null` when absent).
fn get<'a>(value: &'a Value, field: &Field) -> &'a Value {
    &value[field.today]
}

/// `value`'s field by its name in the fixture.
fn fixture_get<'a>(value: &'a Value, field: &Field) -> &'a Value {
    &value[field.fixture]
}

fn items<'a>(value: &'a Value, field: &Field, what: &str) -> &'a [Value] {
    get(value, field)
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no array `{}` in {value}", field.today))
}

fn fixture_items<'a>(value: &'a Value, field: &Field, what: &str) -> &'a [Value] {
    fixture_get(value, field)
        .as_array()
        .unwrap_or_else(|| panic!("fixture {what}: no array `{}`", field.fixture))
}

fn text<'a>(value: &'a Value, field: &Field) -> &'a str {
    get(value, field)
        .as_str()
        .unwrap_or_else(|| panic!("no string `{}` in {value}", field.today))
}

fn count(value: &Value, field: &Field) -> u64 {
    get(value, field)
        .as_u64()
        .unwrap_or_else(|| panic!("no count `{}` in {value}", field.today))
}

/// What the older binary printed: `list --json`, and `show ID --json` of every run in it.
struct Fixture {
    list: Value,
    shows: Vec<Value>,
}

impl Fixture {
    fn read() -> Fixture {
        let expected = fixture_dir().join("expected");
        let list = read_json(&expected.join("list.json"));
        let shows: Vec<Value> = fixture_items(&list, &LIST_RUNS, "list")
            .iter()
            .map(|run| {
                let id = fixture_get(run, &ID).as_str().expect("a run id");
                read_json(&expected.join(format!("show-{id}.json")))
            })
            .collect();
        // Every `show` file is a listed run's: none is left unchecked.
        let files = std::fs::read_dir(&expected).expect("the fixture's expected/");
        let show_files = files
            .filter(|f| {
                let name = f.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("show-")
            })
            .count();
        assert_eq!(show_files, shows.len(), "a show-ID.json of no listed run");
        let fixture = Fixture { list, shows };
        fixture.assert_field_lists_cover_it();
        fixture
    }

    /// Every field the fixture has is compared, or deliberately left out: a field list that
    /// missed one would silently stop checking it.
    fn assert_field_lists_cover_it(&self) {
        for row in fixture_items(&self.list, &LIST_RUNS, "list") {
            assert_covered("list row", row, LIST_FIELDS, &[]);
        }
        let show_parts = [&SHOW_CONFIG, &SHOW_PARAMETERS, &SHOW_EPOCHS, &SHOW_ANALYSIS];
        for run in &self.shows {
            assert_covered("show", run, SHOW_FIELDS, &show_parts);
            assert_covered("config", fixture_get(run, &SHOW_CONFIG), CONFIG_FIELDS, &[]);
            for parameter in fixture_items(run, &SHOW_PARAMETERS, "show") {
                assert_covered("parameter", parameter, PARAMETER_FIELDS, &[]);
            }
            for epoch in fixture_items(run, &SHOW_EPOCHS, "show") {
                let metric = epoch_metric_field(fixture_get(run, &SHOW_VAL_METRIC));
                assert_covered("epoch", epoch, EPOCH_FIELDS, &[&EPOCH_GROUPS, &metric]);
                for group in fixture_items(epoch, &EPOCH_GROUPS, "epoch") {
                    assert_covered("group", group, GROUP_FIELDS, &[]);
                }
            }
        }
    }

    /// The fixture's `show` of the run named `name` (names given by the fixture's make.sh).
    fn run_named(&self, name: &str) -> &Value {
        self.shows
            .iter()
            .find(|run| fixture_get(run, &NAME) == name)
            .unwrap_or_else(|| panic!("the fixture has no run named {name}"))
    }

    fn id_of(&self, name: &str) -> String {
        let run = self.run_named(name);
        fixture_get(run, &ID).as_str().unwrap().to_string()
    }
}

fn assert_covered(what: &str, object: &Value, compared: &[Field], parts: &[&Field]) {
    let named = |key: &str| {
        let mut fields = compared.iter().chain(parts.iter().copied());
        fields.any(|f| f.fixture == key)
    };
    for key in object.as_object().expect("an object").keys() {
        assert!(
            named(key),
            "the fixture's {what} has `{key}`, which no field list at the top of upgrade.rs names"
        );
    }
}

/// Whether the restart after the SIGKILL marked the run `interrupted` (and stamped its finish).
fn left_unfinished(fixture_run: &Value) -> bool {
    fixture_get(fixture_run, &STATUS) == "interrupted"
}

/// `at`, a path within a JSON document (empty: the top), then `name`.
fn path(at: &str, name: impl std::fmt::Display) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

/// The differences found between the fixture and today, each with the run and the path where it
/// is; reported all together, so one failure shows everything that changed.
#[derive(Default)]
struct Differences {
    /// What is compared now, e.g. `show of run 86ytbnpzra82a (interrupted)`.
    context: String,
    found: Vec<String>,
}

impl Differences {
    fn note(&mut self, difference: String) {
        self.found.push(format!("{}: {difference}", self.context));
    }

    /// Compares `field` of the objects at path `at`.
    fn field(&mut self, at: &str, fixture: &Value, today: &Value, field: &Field) {
        match (fixture.get(field.fixture), today.get(field.today)) {
            (None, _) => self.note(format!(
                "{}: not in the fixture: the field lists at the top of upgrade.rs are out of date",
                path(at, field.fixture)
            )),
            (Some(want), None) => self.note(format!(
                "{}: missing today (the fixture has {want})",
                path(at, field.today)
            )),
            (Some(want), Some(got)) => self.value(&path(at, field.today), want, got),
        }
    }

    fn fields<'f>(
        &mut self,
        at: &str,
        fixture: &Value,
        today: &Value,
        fields: impl IntoIterator<Item = &'f Field>,
    ) {
        for field in fields {
            self.field(at, fixture, today, field);
        }
    }

    /// Exactly equal: numbers as the same f64 bit for bit (or the same integer), arrays element
    /// by element, objects key by key (keys only today has are new fields: ignored).
    fn value(&mut self, at: &str, want: &Value, got: &Value) {
        match (want, got) {
            (Value::Number(w), Value::Number(g)) => {
                if !same_number(w, g) {
                    self.note(format!("{at}: the fixture has {w}, today {g}"));
                }
            }
            (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
                for (i, (w, g)) in w.iter().zip(g).enumerate() {
                    self.value(&format!("{at}[{i}]"), w, g);
                }
            }
            (Value::Object(w), Value::Object(g)) => {
                for (key, w) in w {
                    match g.get(key) {
                        Some(g) => self.value(&path(at, key), w, g),
                        None => self.note(format!(
                            "{}: missing today (the fixture has {w})",
                            path(at, key)
                        )),
                    }
                }
            }
            _ if want == got => {}
            _ => self.note(format!("{at}: the fixture has {want}, today {got}")),
        }
    }

    fn assert_none(self, what: &str) {
        assert!(
            self.found.is_empty(),
            "{what}: {} difference(s) from the fixture:\n  {}",
            self.found.len(),
            self.found.join("\n  ")
        );
    }
}

/// The same number: integers equal, or the same f64 bit for bit (the workspace's serde_json
/// parses floats exactly, so equal bits here mean equal bits in the daemon).
fn same_number(a: &Number, b: &Number) -> bool {
    if a.is_f64() || b.is_f64() {
        a.as_f64().map(f64::to_bits) == b.as_f64().map(f64::to_bits)
    } else {
        a == b
    }
}

/// The fixture's epochs against today's first ones, every number bit for bit, every group by
/// name in order.
fn compare_epochs(d: &mut Differences, fixture: &[Value], today: &[Value], metric: &Field) {
    if today.len() < fixture.len() {
        d.note(format!(
            "{} epochs today, the fixture has {}",
            today.len(),
            fixture.len()
        ));
    }
    for (want, got) in fixture.iter().zip(today) {
        let at = format!("epochs[epoch {}]", fixture_get(want, &EPOCH_NUMBER));
        d.fields(&at, want, got, EPOCH_FIELDS.iter().chain([metric]));
        let (want_groups, got_groups) = (
            fixture_items(want, &EPOCH_GROUPS, &at),
            items(got, &EPOCH_GROUPS, &at),
        );
        let names = |groups: &[Value], name: &str| -> Vec<String> {
            groups.iter().map(|g| g[name].to_string()).collect()
        };
        let (want_names, got_names) = (
            names(want_groups, GROUP_NAME.fixture),
            names(got_groups, GROUP_NAME.today),
        );
        if want_names != got_names {
            d.note(format!(
                "{at}.groups: the fixture has {want_names:?}, today {got_names:?}"
            ));
            continue;
        }
        for (want, got) in want_groups.iter().zip(got_groups) {
            let name = fixture_get(want, &GROUP_NAME).as_str().unwrap_or("?");
            let at = format!("{at}.groups[{name}]");
            d.fields(&at, want, got, GROUP_FIELDS);
        }
    }
}

/// The config (every field but `except`) and the parameter table.
fn compare_config_and_parameters(
    d: &mut Differences,
    fixture: &Value,
    today: &Value,
    except: Option<&Field>,
) {
    let (want, got) = (fixture_get(fixture, &SHOW_CONFIG), get(today, &SHOW_CONFIG));
    let compared = CONFIG_FIELDS
        .iter()
        .filter(|f| except.is_none_or(|except| f.fixture != except.fixture));
    d.fields(SHOW_CONFIG.today, want, got, compared);

    let (want, got) = (
        fixture_items(fixture, &SHOW_PARAMETERS, "show"),
        items(today, &SHOW_PARAMETERS, "show"),
    );
    if want.len() != got.len() {
        d.note(format!(
            "{}: {} today, the fixture has {}",
            SHOW_PARAMETERS.today,
            got.len(),
            want.len()
        ));
    }
    for (want, got) in want.iter().zip(got) {
        let name = fixture_get(want, &PARAMETER_NAME).as_str().unwrap_or("?");
        let at = format!("{}[{name}]", SHOW_PARAMETERS.today);
        d.fields(&at, want, got, PARAMETER_FIELDS);
    }
}

/// A run left unfinished was stamped finished by this test's restart (`restart_ms` is just before
/// it), as the older binary's restart stamped it in the fixture.
fn check_stamped_by_restart(d: &mut Differences, today: &Value, restart_ms: u64) {
    let finished = get(today, &FINISHED_AT_MS).as_u64().unwrap_or(0);
    let now = now_ms();
    if !(restart_ms..=now).contains(&finished) {
        d.note(format!(
            "{}: {finished}, not the time of this restart ({restart_ms}..={now})",
            FINISHED_AT_MS.today
        ));
    }
}

/// The run's fields of a `list` row or `show`: all of `fields`, but the finish of a run left
/// unfinished is the time of today's restart.
fn compare_run_fields(
    d: &mut Differences,
    fixture: &Value,
    today: &Value,
    fields: &[Field],
    restart_ms: u64,
) {
    if left_unfinished(fixture) {
        let stamped_today = |f: &&Field| f.fixture == FINISHED_AT_MS.fixture;
        d.fields(
            "",
            fixture,
            today,
            fields.iter().filter(|f| !stamped_today(f)),
        );
        check_stamped_by_restart(d, today, restart_ms);
    } else {
        d.fields("", fixture, today, fields);
    }
}

fn label(run: &Value) -> String {
    format!(
        "run {} ({})",
        fixture_get(run, &ID).as_str().unwrap_or("?"),
        fixture_get(run, &NAME).as_str().unwrap_or("?")
    )
}

/// `list --json`: the same runs in the same order (the deleted one absent), each row the same.
fn check_list(daemon: &Daemon, fixture: &Fixture, restart_ms: u64) {
    let today = daemon.strata(&["list", "--json"]).json();
    let (want, got) = (
        fixture_items(&fixture.list, &LIST_RUNS, "list"),
        items(&today, &LIST_RUNS, "list"),
    );
    let ids = |rows: &[Value], field: &str| -> Vec<String> {
        rows.iter().map(|r| r[field].to_string()).collect()
    };
    assert_eq!(
        ids(got, ID.today),
        ids(want, ID.fixture),
        "list: not the fixture's runs, newest first"
    );
    assert!(
        got.iter().all(|row| get(row, &NAME) != "deleted"),
        "the run deleted before the SIGKILL is listed again: {today}"
    );
    let mut d = Differences::default();
    for (want, got) in want.iter().zip(got) {
        d.context = format!("list row of {}", label(want));
        compare_run_fields(&mut d, want, got, LIST_FIELDS, restart_ms);
    }
    d.assert_none("strata list --json");
}

/// `show ID --json` of every run: the same as the fixture's, but for the analysis (only its
/// verdict is there) and the finish a restart stamps.
fn check_every_show(daemon: &Daemon, fixture: &Fixture, restart_ms: u64) {
    let mut d = Differences::default();
    for want in &fixture.shows {
        d.context = format!("show of {}", label(want));
        let got = show(daemon, fixture_get(want, &ID).as_str().unwrap());
        compare_run_fields(&mut d, want, &got, SHOW_FIELDS, restart_ms);
        compare_config_and_parameters(&mut d, want, &got, None);
        let (want_epochs, got_epochs) = (
            fixture_items(want, &SHOW_EPOCHS, &d.context),
            items(&got, &SHOW_EPOCHS, &d.context),
        );
        if got_epochs.len() > want_epochs.len() {
            d.note(format!(
                "{} epochs today, the fixture has {}",
                got_epochs.len(),
                want_epochs.len()
            ));
        }
        let metric = epoch_metric_field(fixture_get(want, &SHOW_VAL_METRIC));
        compare_epochs(&mut d, want_epochs, got_epochs, &metric);
        let verdict = get(get(&got, &SHOW_ANALYSIS), &ANALYSIS_VERDICT);
        if verdict.as_str().is_none_or(str::is_empty) {
            d.note(format!(
                "{}.{}: none today: {verdict}",
                SHOW_ANALYSIS.today, ANALYSIS_VERDICT.today
            ));
        }
    }
    d.assert_none("strata show ID --json");
}

/// Resumes the fixture's run `name` to `to_epochs` in total (`None`: its configured epochs).
fn resume(daemon: &Daemon, fixture: &Fixture, name: &str, to_epochs: Option<u64>) {
    let id = fixture.id_of(name);
    let target = to_epochs.map(|e| e.to_string());
    let mut args = vec!["resume", id.as_str(), "--json"];
    if let Some(target) = &target {
        args.extend(["--epochs", target.as_str()]);
    }
    let out = daemon.strata(&args);
    assert_eq!(
        out.code,
        0,
        "resume {name}: {out:?}\nlog:\n{}",
        daemon.log()
    );
}

/// Watches `id` to its end with `strata watch`: it completes, and the watch shows its epochs
/// 1..=`epochs`.
fn watch_until_completed(daemon: &Daemon, id: &str, what: &str, epochs: u64) {
    let (code, events) = watch_to_end(daemon, id);
    assert_eq!(code, 0, "watch {what}: {events:?}\nlog:\n{}", daemon.log());
    let last = events.last().expect("watch printed nothing");
    assert_eq!(
        (&last["event"], &last["status"]),
        (&Value::from("status"), &Value::from("completed")),
        "{what} did not complete: {last}\nlog:\n{}",
        daemon.log()
    );
    let watched: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "epoch")
        .map(|e| e["epoch"].as_u64().expect("an epoch number"))
        .collect();
    let expected: Vec<u64> = (1..=epochs).collect();
    assert_eq!(watched, expected, "watch {what}: the epochs, in order");
}

/// A resumed fixture run: completed at `to_epochs`, the same run (config but for its epochs,
/// rate table, creation) with its stored epochs unchanged bit for bit, and the new epochs
/// continuing from them.
fn check_resumed(daemon: &Daemon, fixture: &Fixture, name: &str, to_epochs: u64) {
    let want = fixture.run_named(name);
    let at = format!("resumed {}", label(want));
    let got = show(daemon, &fixture.id_of(name));
    assert_eq!(text(&got, &STATUS), "completed", "{at}: {got}");
    assert_eq!(count(&got, &EPOCHS_DONE), to_epochs, "{at}");
    assert_eq!(
        count(get(&got, &SHOW_CONFIG), &CONFIG_EPOCHS),
        to_epochs,
        "{at}"
    );
    let resumed_before = fixture_get(want, &RESUMES).as_u64().unwrap();
    assert_eq!(count(&got, &RESUMES), resumed_before + 1, "{at}");

    let mut d = Differences {
        context: at.clone(),
        ..Differences::default()
    };
    d.fields("", want, &got, [&ID, &NAME, &TAGS, &CREATED_AT_MS]);
    compare_config_and_parameters(&mut d, want, &got, Some(&CONFIG_EPOCHS));
    let (stored, epochs) = (
        fixture_items(want, &SHOW_EPOCHS, &at),
        items(&got, &SHOW_EPOCHS, &at),
    );
    let metric = epoch_metric_field(fixture_get(want, &SHOW_VAL_METRIC));
    compare_epochs(&mut d, stored, epochs, &metric);
    d.assert_none(&at);

    let numbers: Vec<u64> = epochs.iter().map(|e| count(e, &EPOCH_NUMBER)).collect();
    assert_eq!(
        numbers,
        (1..=to_epochs).collect::<Vec<u64>>(),
        "{at}: epochs"
    );
    // Every fixture run resumed here trains at a constant schedule (its config says so, compared
    // above): each new epoch's groups train at the rates of the run's parameter table.
    let group_rate = |group: &str| -> &Value {
        let parameter = items(&got, &SHOW_PARAMETERS, &at)
            .iter()
            .find(|p| get(p, &PARAMETER_GROUP) == group)
            .unwrap_or_else(|| panic!("{at}: no parameter in group {group}"));
        get(parameter, &PARAMETER_LR)
    };
    for epoch in &epochs[stored.len()..] {
        for group in items(epoch, &EPOCH_GROUPS, &at) {
            let name = text(group, &GROUP_NAME);
            assert_eq!(
                get(group, &GROUP_LR),
                group_rate(name),
                "{at}: epoch {} group {name} trains at another rate than its table's",
                get(epoch, &EPOCH_NUMBER)
            );
        }
    }
    // It continued from its checkpoint, not from scratch: a fresh model's first epoch loss (like
    // epoch 1's) is far above the trained one's. Not compared with the fixture's numbers: another
    // CPU's kernels round differently, and a trajectory there behaves like another seed.
    if let Some(last_stored) = stored.len().checked_sub(1) {
        let loss = |epoch: usize| get(&epochs[epoch], &TRAIN_LOSS).as_f64().unwrap();
        let first_resumed = last_stored + 1;
        assert!(
            loss(first_resumed) < 0.5 * loss(0),
            "{at}: epoch {} restarted from scratch? its training loss {} vs epoch 1's {}",
            first_resumed + 1,
            loss(first_resumed),
            loss(0)
        );
    }
}

/// A fine-tune from a fixture run: loads every parameter of the same model from its last epoch.
fn check_finetune_from(daemon: &Daemon, fixture: &Fixture, source_name: &str) {
    let source = fixture.run_named(source_name);
    let source_id = fixture.id_of(source_name);
    let id = start_with_flags(
        daemon,
        &[
            "--dataset",
            "spirals",
            "--samples",
            "200",
            "--model",
            "mlp:8,8",
            "--epochs",
            "1",
            "--init-from",
            &source_id,
        ],
    );
    watch_until_completed(daemon, &id, "the fine-tune", 1);
    let got = show(daemon, &id);
    assert_eq!(text(&got, &STATUS), "completed", "{got}");
    assert_eq!(count(&got, &EPOCHS_DONE), 1, "{got}");
    let source_epochs = fixture_get(source, &EPOCHS_DONE).as_u64().unwrap();
    assert_eq!(
        text(get(&got, &SHOW_CONFIG), &CONFIG_INIT_FROM),
        format!("{source_id}@{source_epochs}"),
        "the fine-tune does not say it starts from the fixture run's last epoch"
    );
    let loaded: Vec<(&str, &str)> = items(&got, &SHOW_PARAMETERS, "fine-tune")
        .iter()
        .map(|p| (text(p, &PARAMETER_NAME), text(p, &PARAMETER_INIT)))
        .collect();
    let source_parameters: Vec<(&str, &str)> =
        fixture_items(source, &SHOW_PARAMETERS, "fine-tune source")
            .iter()
            .map(|p| (fixture_get(p, &PARAMETER_NAME).as_str().unwrap(), "loaded"))
            .collect();
    assert_eq!(
        loaded, source_parameters,
        "the same model loads every parameter of the fixture run"
    );
}

#[test]
fn a_data_dir_of_the_first_store_format_opens_resumes_and_checks_healthy() {
    let fixture = Fixture::read();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&fixture_dir().join("data"), &data);

    let restart_ms = now_ms();
    let daemon = Daemon::start_in(&data, &[]);
    check_list(&daemon, &fixture, restart_ms);
    check_every_show(&daemon, &fixture, restart_ms);

    let (completed, finetune) = (fixture.id_of("completed"), fixture.id_of("finetune"));
    let out = daemon.strata(&["compare", &completed, &finetune]);
    assert_eq!(out.code, 0, "compare: {out:?}");
    assert!(
        out.stdout.contains(&completed) && out.stdout.contains(&finetune),
        "compare does not name both runs: {}",
        out.stdout
    );

    // Queued one after the other (one run trains at a time), then watched to their ends.
    for &(name, to_epochs) in RESUMED {
        resume(&daemon, &fixture, name, to_epochs);
    }
    for &(name, to_epochs) in RESUMED {
        let configured = fixture_get(fixture.run_named(name), &SHOW_CONFIG)[CONFIG_EPOCHS.fixture]
            .as_u64()
            .unwrap();
        let epochs = to_epochs.unwrap_or(configured);
        watch_until_completed(&daemon, &fixture.id_of(name), name, epochs);
        check_resumed(&daemon, &fixture, name, epochs);
    }
    check_finetune_from(&daemon, &fixture, "completed");

    // What `check` must find: every run and epoch the daemon shows.
    let list = daemon.strata(&["list", "--json"]).json();
    let runs = items(&list, &LIST_RUNS, "list");
    let epochs: u64 = runs.iter().map(|run| count(run, &EPOCHS_DONE)).sum();
    assert!(daemon.stop().success(), "stratad did not exit cleanly");

    let out = stratad_command(&["check", "--json"], &data);
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stratad check --json is not JSON ({e}): {out:?}"));
    assert_eq!(out.code, 0, "stratad check: {report}\n{}", out.stderr);
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["runs"], runs.len(), "{report}");
    assert_eq!(report["epochs"], epochs, "{report}");
    assert_eq!(
        report["checkpoints_verified"], report["checkpoints"],
        "every checkpoint, the older binary's included, has a checksum that verifies: {report}"
    );
}
