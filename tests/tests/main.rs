//! The end-to-end tests, one binary: a real `stratad` on 127.0.0.1:0 with a temporary data dir,
//! driven through the real clients (the CLI, the Rust and Python clients, a browser), one module
//! per area. Their shared fixtures are the `strata_e2e` library (`tests/src/`).
//!
//! Run one area with `cargo test -p strata-e2e --test e2e -- AREA::` (e.g. `dashboard::`).

mod analysis;
mod confinement;
mod connections;
mod corpus;
mod curves;
mod dashboard;
mod dashboard_charts;
mod dashboard_sweep;
mod dashboard_tables;
mod dashboard_tls;
mod data_models;
mod deploy;
mod docs;
mod durability;
mod external;
mod external_resilience;
mod finetune;
mod foundation;
mod hostile;
mod integrity;
mod leakage;
mod lifecycle;
mod live_state;
mod long_runs;
mod lr_find;
mod python_client;
mod remote_workers;
mod several_daemons;
mod shutdown;
mod sweep;
mod tensorboard;
mod twin;
mod upgrade;
mod watch_resume;
mod workers;

/// Every file beside this one is one of its modules: with one test binary (`autotests = false`),
/// a test file left out of the list above would never run, silently.
#[test]
fn every_test_file_is_a_module_of_the_binary() {
    let dir = strata_e2e::repo_root().join("tests/tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(module) = name.strip_suffix(".rs") {
            if module != "main" && !main.contains(&format!("\nmod {module};\n")) {
                missing.push(module.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to tests/tests/main.rs for {missing:?}"
    );
}
