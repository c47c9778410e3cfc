//! The deployment files (`deploy/k8s/`, `docker-compose.yml`) agree with the daemon they run: every
//! `STRATA_*` variable and flag they set is one `stratad` takes, the Kubernetes objects refer to
//! each other by the right names and ports, the readiness probe asks the health service about the
//! service stratad really serves, and every daemon has a volume of its own.
//!
//! No cluster and no Docker here: these checks keep the files from drifting as the daemon's flags
//! change, which is how deployment files usually break.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use serde::Deserialize;
use serde_yaml::Value;
use strata_e2e::bin;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn yaml_documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_file(path)).expect("a deployment file");
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}"));
            // Compose's `<<: *anchor` merge keys, as Docker Compose applies them.
            value.apply_merge().expect("merge keys");
            value
        })
        .collect()
}

fn str_of<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    walk(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn walk<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| match value {
        Value::Sequence(items) => &items[key.parse::<usize>().expect("an index")],
        _ => value
            .get(*key)
            .unwrap_or_else(|| panic!("no {key:?} in {path:?}")),
    })
}

fn seq<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    walk(value, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path:?} is not a list"))
}

/// What `stratad --help` offers: its flags and the environment variables behind them.
struct DaemonOptions {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

fn daemon_options() -> DaemonOptions {
    let output = Command::new(bin("stratad"))
        .arg("--help")
        .output()
        .expect("stratad --help");
    let help = String::from_utf8_lossy(&output.stdout);
    let words = || help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    let flags = words()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    let env = words()
        .filter(|w| w.starts_with("STRATA_"))
        .map(str::to_string)
        .collect();
    DaemonOptions { flags, env }
}

/// The one document of `kind` in a file.
fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    seq(container, &["env"])
        .iter()
        .map(|e| {
            (
                str_of(e, &["name"]).to_string(),
                e.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn the_kubernetes_manifests_fit_stratad_and_each_other() {
    let options = daemon_options();
    let statefulset = &yaml_documents("deploy/k8s/statefulset.yaml")[0];
    let service = &yaml_documents("deploy/k8s/service.yaml")[0];
    let secret = &yaml_documents("deploy/k8s/secret.yaml")[0];
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let gpu = &yaml_documents("deploy/k8s/gpu-patch.yaml")[0];

    // Every file the kustomization lists exists, and every object is in the one namespace.
    for resource in seq(kustomization, &["resources"]) {
        let file = resource.as_str().expect("a file name");
        let documents = yaml_documents(&format!("deploy/k8s/{file}"));
        let object = of_kind(&documents, str_of(&documents[0], &["kind"]));
        if str_of(object, &["kind"]) == "Namespace" {
            assert_eq!(str_of(object, &["metadata", "name"]), "strata");
        } else {
            assert_eq!(
                str_of(object, &["metadata", "namespace"]),
                "strata",
                "{file}"
            );
        }
    }

    // The headless Service finds the StatefulSet's pods, and is the one it names.
    assert_eq!(str_of(service, &["spec", "clusterIP"]), "None");
    assert_eq!(
        str_of(statefulset, &["spec", "serviceName"]),
        str_of(service, &["metadata", "name"])
    );
    let pod_labels = walk(statefulset, &["spec", "template", "metadata", "labels"]);
    let selector = walk(service, &["spec", "selector"]).as_mapping().unwrap();
    for (key, value) in selector {
        assert_eq!(pod_labels.get(key), Some(value), "selector {key:?}");
    }
    assert_eq!(
        walk(statefulset, &["spec", "selector", "matchLabels"]),
        pod_labels
    );

    let pod = walk(statefulset, &["spec", "template", "spec"]);
    let container = &seq(pod, &["containers"])[0];
    let port_named = |name: &str| -> u64 {
        seq(container, &["ports"])
            .iter()
            .find(|p| str_of(p, &["name"]) == name)
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .unwrap_or_else(|| panic!("no container port named {name}"))
    };
    for port in seq(service, &["spec", "ports"]) {
        port_named(str_of(port, &["targetPort"]));
    }

    // Every variable and flag is one stratad takes; the listen ports are the container's ports.
    let env = env_of(container);
    for (name, _) in env.iter().filter(|(name, _)| name.starts_with("STRATA_")) {
        assert!(options.env.contains(name), "stratad takes no {name}");
    }
    for arg in seq(container, &["args"]) {
        let arg = arg.as_str().unwrap();
        if arg.starts_with("--") {
            assert!(options.flags.contains(arg), "stratad takes no {arg}");
        }
    }
    let value_of = |name: &str| -> &str {
        &env.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not set"))
            .1
    };
    let port_in = |addr: &str| -> u64 { addr.rsplit_once(':').unwrap().1.parse().unwrap() };
    assert_eq!(port_in(value_of("STRATA_LISTEN")), port_named("grpc"));
    assert_eq!(
        port_in(value_of("STRATA_DASHBOARD_LISTEN")),
        port_named("dashboard")
    );

    // The readiness probe asks grpc.health.v1 about the service stratad serves, on its port.
    let readiness = walk(container, &["readinessProbe", "grpc"]);
    assert_eq!(
        str_of(readiness, &["service"]),
        strata_proto::strata_server::SERVICE_NAME
    );
    assert_eq!(
        walk(readiness, &["port"]).as_u64(),
        Some(port_named("grpc"))
    );

    // The token file is the Secret's key, mounted where STRATA_TOKEN_FILE says.
    let mount_of = |volume: &str| -> String {
        seq(container, &["volumeMounts"])
            .iter()
            .find(|m| str_of(m, &["name"]) == volume)
            .map(|m| str_of(m, &["mountPath"]).to_string())
            .unwrap_or_else(|| panic!("volume {volume} is not mounted"))
    };
    let token_volume = seq(pod, &["volumes"])
        .iter()
        .find(|v| v.get("secret").is_some())
        .expect("a volume from the token Secret");
    assert_eq!(
        str_of(token_volume, &["secret", "secretName"]),
        str_of(secret, &["metadata", "name"])
    );
    let key = walk(secret, &["stringData"])
        .as_mapping()
        .unwrap()
        .keys()
        .next()
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_eq!(
        value_of("STRATA_TOKEN_FILE"),
        format!("{}/{key}", mount_of(str_of(token_volume, &["name"])))
    );

    // The data dir is the pod's own persistent volume; the datasets root lies inside it and is
    // made before stratad starts.
    let claim = &seq(statefulset, &["spec", "volumeClaimTemplates"])[0];
    let data_mount = mount_of(str_of(claim, &["metadata", "name"]));
    assert_eq!(value_of("STRATA_DATA_DIR"), data_mount);
    let roots = value_of("STRATA_DATA_ROOTS");
    assert!(roots.starts_with(&format!("{data_mount}/")), "{roots}");
    let init = seq(pod, &["initContainers"])[0].clone();
    assert!(
        seq(&init, &["command"])
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.contains(roots))),
        "the init container makes {roots}"
    );

    // The GPU example patches the same StatefulSet's container.
    assert_eq!(
        str_of(gpu, &["metadata", "name"]),
        str_of(statefulset, &["metadata", "name"])
    );
    let gpu_container = &seq(gpu, &["spec", "template", "spec", "containers"])[0];
    assert_eq!(
        str_of(gpu_container, &["name"]),
        str_of(container, &["name"])
    );
}

#[test]
fn docker_compose_runs_daemons_with_a_volume_each_on_loopback_ports() {
    let options = daemon_options();
    let compose = &yaml_documents("docker-compose.yml")[0];
    let services = walk(compose, &["services"]).as_mapping().unwrap();
    assert!(
        services.len() >= 3,
        "the `several` profile runs three daemons"
    );
    let (mut volumes, mut host_ports) = (BTreeSet::new(), BTreeSet::new());
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let env = walk(service, &["environment"]).as_mapping().unwrap();
        for key in env.keys() {
            let key = key.as_str().unwrap();
            if !key.starts_with("STRATA_") {
                continue; // RUST_LOG and the like
            }
            assert!(options.env.contains(key), "{name}: stratad takes no {key}");
        }
        for volume in seq(service, &["volumes"]) {
            let volume = volume.as_str().unwrap();
            assert!(volume.ends_with(":/data"), "{name}: {volume}");
            assert!(volumes.insert(volume.to_string()), "{name} shares {volume}");
        }
        for port in seq(service, &["ports"]) {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
            let host = port.split(':').nth(1).unwrap().to_string();
            assert!(host_ports.insert(host), "{name}: {port} is published twice");
        }
    }
}
