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
    let worker_options = worker_options();
    let (mut volumes, mut host_ports) = (BTreeSet::new(), BTreeSet::new());
    let mut worker_listens = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let env = walk(service, &["environment"]).as_mapping().unwrap();
        let is_worker = service
            .get("entrypoint")
            .and_then(|e| e.as_sequence())
            .is_some_and(|e| e[0].as_str() == Some("strata-worker"));
        if is_worker {
            // A remote worker: its variables and flags are strata-worker's, and it connects to
            // a daemon of this file that takes workers, with the same token.
            for key in env.keys().filter_map(Value::as_str) {
                if key.starts_with("STRATA_") {
                    assert!(
                        worker_options.env.contains(key),
                        "{name}: strata-worker takes no {key}"
                    );
                }
            }
            for arg in seq(service, &["command"]).iter().filter_map(Value::as_str) {
                if arg.starts_with("--") {
                    assert!(
                        worker_options.flags.contains(arg),
                        "{name}: strata-worker takes no {arg}"
                    );
                }
            }
            let connect = str_of(service, &["environment", "STRATA_WORKER_CONNECT"]);
            let (host, port) = connect
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .split_once(':')
                .unwrap();
            let hub = walk(compose, &["services", host]);
            let listen = str_of(hub, &["environment", "STRATA_WORKER_LISTEN"]);
            assert!(
                listen.ends_with(&format!(":{port}")),
                "{name} connects to {connect}, {host} listens on {listen}"
            );
            assert_eq!(
                str_of(service, &["environment", "STRATA_WORKER_TOKEN_FILE"]),
                str_of(hub, &["environment", "STRATA_WORKER_TOKEN_FILE"]),
                "{name} presents the token {host} takes"
            );
            for volume in seq(service, &["volumes"]).iter().filter_map(Value::as_str) {
                assert!(volume.ends_with(":ro"), "{name} mounts {volume} read-only");
            }
            assert!(service.get("ports").is_none(), "{name} publishes nothing");
            continue;
        }
        if env.contains_key("STRATA_WORKER_LISTEN") {
            worker_listens.push(name.to_string());
        }
        for key in env.keys() {
            let key = key.as_str().unwrap();
            if !key.starts_with("STRATA_") {
                continue; // RUST_LOG and the like
            }
            assert!(options.env.contains(key), "{name}: stratad takes no {key}");
        }
        let mut data_volumes = 0;
        for volume in seq(service, &["volumes"]) {
            let volume = volume.as_str().unwrap();
            if volume.ends_with(":ro") {
                continue; // datasets, shared read-only
            }
            assert!(volume.ends_with(":/data"), "{name}: {volume}");
            assert!(volumes.insert(volume.to_string()), "{name} shares {volume}");
            data_volumes += 1;
        }
        assert_eq!(data_volumes, 1, "{name} has one data volume");
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
    assert_eq!(worker_listens, ["hub"], "one daemon takes the workers");
    let workers = services
        .values()
        .filter(|s| s.get("entrypoint").is_some())
        .count();
    assert_eq!(workers, 2, "the `workers` profile runs two workers");
}

/// What `strata-worker --help` and `strata-worker serve --help` offer.
fn worker_options() -> DaemonOptions {
    let mut flags = BTreeSet::new();
    let mut env = BTreeSet::new();
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let output = Command::new(bin("strata-worker"))
            .args(args)
            .output()
            .expect("strata-worker --help");
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        let words: Vec<String> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map(str::to_string)
            .collect();
        flags.extend(
            words
                .iter()
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .cloned(),
        );
        env.extend(words.iter().filter(|w| w.starts_with("STRATA_")).cloned());
    }
    DaemonOptions { flags, env }
}

#[test]
fn the_kubernetes_workers_fit_strata_worker_and_their_hub() {
    let options = daemon_options();
    let worker_options = worker_options();
    let kustomization = &yaml_documents("deploy/k8s/workers/kustomization.yaml")[0];
    let deployment = &yaml_documents("deploy/k8s/workers/worker-deployment.yaml")[0];
    let hub = &yaml_documents("deploy/k8s/workers/hub-patch.yaml")[0];
    let statefulset = &yaml_documents("deploy/k8s/statefulset.yaml")[0];
    let service = &yaml_documents("deploy/k8s/service.yaml")[0];

    // The overlay builds on the daemons' files; its generated Secrets come from files, never
    // from an empty manifest that `kubectl apply` would reset.
    let resources: Vec<&str> = seq(kustomization, &["resources"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(resources.contains(&".."), "{resources:?}");
    for file in resources.iter().filter(|r| r.ends_with(".yaml")) {
        yaml_documents(&format!("deploy/k8s/workers/{file}"));
    }
    for patch in seq(kustomization, &["patches"]) {
        let patched =
            &yaml_documents(&format!("deploy/k8s/workers/{}", str_of(patch, &["path"])))[0];
        let base = if str_of(patched, &["kind"]) == "Service" {
            service
        } else {
            statefulset
        };
        assert_eq!(
            str_of(patched, &["metadata", "name"]),
            str_of(base, &["metadata", "name"])
        );
    }
    let generated = |name: &str| -> Vec<String> {
        seq(kustomization, &["secretGenerator"])
            .iter()
            .find(|g| str_of(g, &["name"]) == name)
            .map(|g| {
                seq(g, &["files"])
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_else(|| panic!("no generated Secret {name}"))
    };
    let ignored = std::fs::read_to_string(repo_file(".gitignore")).unwrap();
    for file in generated("strata-worker-token")
        .iter()
        .chain(&generated("strata-worker-tls"))
    {
        assert!(
            ignored.contains(&format!("/deploy/k8s/workers/{file}")),
            "{file} is made by whoever deploys, and git-ignored"
        );
    }

    // The hub: stratad's own variables, training nothing itself, its worker port named.
    let hub_container = &seq(hub, &["spec", "template", "spec", "containers"])[0];
    let hub_env = env_of(hub_container);
    for (name, _) in &hub_env {
        assert!(options.env.contains(name), "stratad takes no {name}");
    }
    let hub_value = |name: &str| -> String {
        hub_env
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
            .clone()
    };
    assert_eq!(
        walk(hub, &["spec", "replicas"]).as_u64(),
        Some(1),
        "one store"
    );
    let args: Vec<&str> = seq(hub_container, &["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args, ["--max-concurrent-runs", "0"]);
    let worker_port = seq(hub_container, &["ports"])
        .iter()
        .find(|p| str_of(p, &["name"]) == "workers")
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .expect("a container port named workers");
    assert!(hub_value("STRATA_WORKER_LISTEN").ends_with(&format!(":{worker_port}")));

    // The workers: strata-worker's flags and variables, a GPU each, the hub's address and port,
    // the token and CA from the generated Secrets, the datasets where the hub reads them.
    let pod = walk(deployment, &["spec", "template", "spec"]);
    let container = &seq(pod, &["containers"])[0];
    assert_eq!(
        seq(container, &["command"])[0].as_str(),
        Some("strata-worker")
    );
    for arg in seq(container, &["args"]).iter().filter_map(Value::as_str) {
        if arg.starts_with("--") {
            assert!(
                worker_options.flags.contains(arg),
                "strata-worker takes no {arg}"
            );
        }
    }
    let env = env_of(container);
    for (name, _) in env.iter().filter(|(n, _)| n.starts_with("STRATA_")) {
        assert!(
            worker_options.env.contains(name),
            "strata-worker takes no {name}"
        );
    }
    let value = |name: &str| -> String {
        env.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .1
            .clone()
    };
    let connect = value("STRATA_WORKER_CONNECT");
    let expected_host = format!(
        "https://{}-0.{}.strata.svc.cluster.local:{worker_port}",
        str_of(statefulset, &["metadata", "name"]),
        str_of(service, &["metadata", "name"])
    );
    assert_eq!(connect, expected_host);
    assert_eq!(
        walk(container, &["resources", "limits", "nvidia.com/gpu"]).as_u64(),
        Some(1)
    );
    let mounted = |container: &Value, volumes: &Value, path: &str| -> String {
        // The volume holding `path`, and the Secret or claim behind it.
        let mount = seq(container, &["volumeMounts"])
            .iter()
            .find(|m| path.starts_with(&format!("{}/", str_of(m, &["mountPath"]))))
            .unwrap_or_else(|| panic!("nothing is mounted over {path}"));
        let volume = volumes
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| str_of(v, &["name"]) == str_of(mount, &["name"]))
            .unwrap();
        volume
            .get("secret")
            .map(|s| str_of(s, &["secretName"]).to_string())
            .or_else(|| {
                volume
                    .get("persistentVolumeClaim")
                    .map(|c| str_of(c, &["claimName"]).to_string())
            })
            .unwrap()
    };
    let hub_volumes = walk(hub, &["spec", "template", "spec", "volumes"]);
    let volumes = walk(pod, &["volumes"]);
    let token = value("STRATA_WORKER_TOKEN_FILE");
    assert_eq!(mounted(container, volumes, &token), "strata-worker-token");
    assert!(generated("strata-worker-token")
        .iter()
        .any(|f| token.ends_with(&format!("/{f}"))));
    assert_eq!(
        mounted(
            hub_container,
            hub_volumes,
            &hub_value("STRATA_WORKER_TOKEN_FILE")
        ),
        "strata-worker-token"
    );
    assert_eq!(
        mounted(container, volumes, &value("STRATA_WORKER_TLS_CA")),
        "strata-worker-tls"
    );
    assert_eq!(
        mounted(
            hub_container,
            hub_volumes,
            &hub_value("STRATA_WORKER_TLS_CERT")
        ),
        "strata-worker-tls"
    );
    let roots = hub_value("STRATA_DATA_ROOTS");
    let args: Vec<&str> = seq(container, &["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let worker_root = args[args.iter().position(|a| *a == "--data-root").unwrap() + 1];
    assert_eq!(
        worker_root, roots,
        "the datasets at the same path on the hub and the workers"
    );
    assert_eq!(
        mounted(container, volumes, &format!("{worker_root}/x")),
        mounted(hub_container, hub_volumes, &format!("{roots}/x"))
    );
}

#[test]
fn the_slurm_script_runs_strata_worker_with_flags_it_takes() {
    let options = worker_options();
    let script = std::fs::read_to_string(repo_file("deploy/slurm/strata-worker.sbatch")).unwrap();
    // The command, its continuation lines joined.
    let command = script.replace("\\\n", " ");
    let line = command
        .lines()
        .find(|l| l.trim_start().starts_with("exec strata-worker"))
        .expect("the script execs strata-worker (so SIGTERM reaches it)");
    let flags: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .collect();
    assert!(line.contains(" serve "), "{line}");
    for flag in &flags {
        assert!(
            options.flags.contains(*flag),
            "strata-worker takes no {flag}"
        );
    }
    for word in script.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("STRATA_WORKER_") {
            assert!(options.env.contains(word), "strata-worker reads no {word}");
        }
    }
    assert!(script.contains("#SBATCH --gres=gpu:1"));
    assert!(
        script.contains("#SBATCH --signal=B:TERM@"),
        "TERM before the time limit"
    );
}
