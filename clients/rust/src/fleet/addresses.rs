//! Where the daemons are: [`DaemonSpec`]s from `--addr` values, from a daemons file, and from a
//! `dns:` address that resolves into every daemon behind one name (a Kubernetes headless Service).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClientError;

/// The port a `dns:` address without one uses: stratad's default.
pub const DEFAULT_PORT: u16 = 50051;

/// Longest daemon name in a daemons file: it is shown in a column of `strata list`.
const MAX_NAME_CHARS: usize = 64;

/// One daemon as configured: its short name and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSpec {
    /// What output calls it: the daemons file's name, else the address as given.
    pub name: String,
    /// `http://host:port`, `https://host:port`, `host:port`, or `dns:///host:port`.
    pub addr: String,
    /// The bearer token for this daemon (else none).
    pub token: Option<String>,
    /// A PEM CA certificate to trust for this daemon's `https://` address.
    pub tls_ca: Option<Vec<u8>>,
}

impl DaemonSpec {
    /// A daemon named by its address (the scheme left off when it is plain `http://`).
    pub fn from_addr(addr: &str, token: Option<String>, tls_ca: Option<Vec<u8>>) -> DaemonSpec {
        let addr = addr.trim();
        DaemonSpec {
            name: addr.strip_prefix("http://").unwrap_or(addr).to_string(),
            addr: addr.to_string(),
            token,
            tls_ca,
        }
    }

    /// Whether the address is a `dns:` name that stands for several daemons.
    pub fn is_dns(&self) -> bool {
        dns_target(&self.addr).is_some()
    }
}

/// `dns:///host:port`, `dns://AUTHORITY/host:port` (the authority is ignored: the system
/// resolver answers) or `dns:host:port` → `host:port`, as gRPC writes its DNS names.
fn dns_target(addr: &str) -> Option<&str> {
    let rest = addr.trim().strip_prefix("dns:")?;
    Some(match rest.strip_prefix("//") {
        Some(with_authority) => with_authority
            .split_once('/')
            .map_or(with_authority, |(_, target)| target),
        None => rest,
    })
}

/// Expands a `dns:` spec into one spec per address its name resolves to (A and AAAA records,
/// through the system resolver), named `IP:PORT` (`NAME/IP:PORT` when the spec has a name of its
/// own), in address order; any other spec is returned as it is.
pub async fn resolve(spec: DaemonSpec) -> Result<Vec<DaemonSpec>, ClientError> {
    let Some(target) = dns_target(&spec.addr) else {
        return Ok(vec![spec]);
    };
    let invalid = |reason: String| ClientError::InvalidAddress {
        addr: spec.addr.clone(),
        reason,
    };
    let (host, port) = match target.rsplit_once(':') {
        // An IPv6 literal without a port has colons but ends in ']'.
        Some((host, port)) if !port.ends_with(']') => {
            let port: u16 = port
                .parse()
                .map_err(|_| invalid(format!("port '{port}' is not a number from 1 to 65535")))?;
            (host, port)
        }
        _ => (target, DEFAULT_PORT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid(
            "no host name; write dns:///HOST:PORT, e.g. dns:///stratad.strata.svc.cluster.local:50051".into(),
        ));
    }
    let mut found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|err| ClientError::Connect {
            addr: spec.addr.clone(),
            reason: format!("cannot resolve '{host}': {err}"),
        })?
        .collect();
    found.sort();
    found.dedup();
    // One address family: a dual-stack cluster gives each pod an IPv4 and an IPv6 record, and
    // the same daemon twice would make every run id ambiguous. IPv4 when there is any.
    if found.iter().any(std::net::SocketAddr::is_ipv4) {
        found.retain(std::net::SocketAddr::is_ipv4);
    }
    // The name stands for the daemons; one from `--addr` is the address itself, not worth
    // repeating in front of every IP.
    let prefix = if spec.name == spec.addr.trim() {
        String::new()
    } else {
        format!("{}/", spec.name)
    };
    Ok(found
        .into_iter()
        .map(|socket| DaemonSpec {
            name: format!("{prefix}{socket}"),
            addr: format!("http://{socket}"),
            token: spec.token.clone(),
            tls_ca: spec.tls_ca.clone(),
        })
        .collect())
}

/// The daemons file read when neither `--addr` nor `--daemons` is given:
/// `$XDG_CONFIG_HOME/strata/daemons.toml`, else `~/.config/strata/daemons.toml`.
pub fn default_daemons_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("strata").join("daemons.toml"))
}

/// A daemons file as written:
///
/// ```toml
/// [daemons.gpu1]
/// addr = "http://gpu1:50051"
/// token_file = "gpu1.token"   # optional; relative to this file's folder
/// tls_ca = "ca.pem"           # optional, for an https:// address
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonsFile {
    daemons: std::collections::BTreeMap<String, DaemonEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonEntry {
    addr: String,
    token_file: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
}

/// The daemons a daemons file names, in name order. `token` and `tls_ca` are what a daemon
/// without its own `token_file` / `tls_ca` uses (the global `--token` and `--tls-ca`).
///
/// Errors name the file, the daemon and the field, and say what is allowed.
pub fn read_daemons_file(
    path: &Path,
    token: Option<&str>,
    tls_ca: Option<&[u8]>,
) -> Result<Vec<DaemonSpec>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("daemons file {shown}: cannot read it: {err}"))?;
    let file: DaemonsFile = toml::from_str(&text).map_err(|err| {
        let message = err.message().trim().to_string();
        format!("daemons file {shown}: {message}; write [daemons.NAME] tables with addr = \"http://host:port\" (and optional token_file, tls_ca)")
    })?;
    if file.daemons.is_empty() {
        return Err(format!(
            "daemons file {shown}: names no daemon; add a [daemons.NAME] table with addr = \"http://host:port\""
        ));
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    let read = |name: &str, field: &str, file: &Path| {
        std::fs::read(folder.join(file)).map_err(|err| {
            format!(
                "daemons file {shown}: daemons.{name}.{field}: cannot read {}: {err}",
                folder.join(file).display()
            )
        })
    };
    let mut specs = Vec::with_capacity(file.daemons.len());
    for (name, entry) in file.daemons {
        check_name(&name).map_err(|reason| format!("daemons file {shown}: {reason}"))?;
        if entry.addr.trim().is_empty() {
            return Err(format!(
                "daemons file {shown}: daemons.{name}.addr is empty; write http://host:port"
            ));
        }
        let token = match &entry.token_file {
            Some(file) => {
                let bytes = read(&name, "token_file", file)?;
                let token = String::from_utf8(bytes).map_err(|_| {
                    format!("daemons file {shown}: daemons.{name}.token_file is not text")
                })?;
                Some(token.trim().to_string())
            }
            None => token.map(str::to_string),
        };
        let tls_ca = match &entry.tls_ca {
            Some(file) => Some(read(&name, "tls_ca", file)?),
            None => tls_ca.map(<[u8]>::to_vec),
        };
        specs.push(DaemonSpec {
            name,
            addr: entry.addr.trim().to_string(),
            token,
            tls_ca,
        });
    }
    Ok(specs)
}

/// A daemon's name: what `--on NAME` takes and `list` shows.
fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(format!(
            "daemon name '{name}': use 1 to {MAX_NAME_CHARS} letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_targets_follow_grpc_names() {
        assert_eq!(dns_target("dns:///svc.ns:50051"), Some("svc.ns:50051"));
        assert_eq!(dns_target("dns://8.8.8.8/svc:1"), Some("svc:1"));
        assert_eq!(dns_target("dns:svc:1"), Some("svc:1"));
        assert_eq!(dns_target("http://svc:1"), None);
        assert_eq!(
            DaemonSpec::from_addr("http://h:1", None, None).name,
            "h:1",
            "plain http is left off the name"
        );
    }

    #[tokio::test]
    async fn dns_names_resolve_into_one_daemon_per_address() {
        let spec = DaemonSpec::from_addr("dns:///localhost:7", Some("t".into()), None);
        let resolved = resolve(spec).await.expect("localhost resolves offline");
        assert!(!resolved.is_empty());
        for daemon in &resolved {
            assert!(daemon.addr.starts_with("http://") && daemon.addr.ends_with(":7"));
            assert_eq!(daemon.name, daemon.addr.trim_start_matches("http://"));
            assert_eq!(daemon.token.as_deref(), Some("t"));
        }
        let bad = resolve(DaemonSpec::from_addr("dns:///h:port", None, None)).await;
        assert!(bad.unwrap_err().to_string().contains("port 'port'"));
        let plain = DaemonSpec::from_addr("h:1", None, None);
        assert_eq!(resolve(plain.clone()).await.unwrap(), vec![plain]);
    }

    #[test]
    fn daemons_files_name_daemons_and_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.token"), "s3cret\n").unwrap();
        let path = dir.path().join("daemons.toml");
        std::fs::write(
            &path,
            "[daemons.b]\naddr = \"http://b:1\"\ntoken_file = \"b.token\"\n\n[daemons.a]\naddr = \"a:2\"\n",
        )
        .unwrap();
        let specs = read_daemons_file(&path, Some("global"), None).unwrap();
        let names: Vec<(&str, &str, Option<&str>)> = specs
            .iter()
            .map(|s| (s.name.as_str(), s.addr.as_str(), s.token.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("a", "a:2", Some("global")),
                ("b", "http://b:1", Some("s3cret"))
            ]
        );
        for (text, expected) in [
            ("[daemons.a]\nadr = \"x\"\n", "unknown field `adr`"),
            ("[daemons.a]\n", "missing field `addr`"),
            ("daemons = {}\n", "names no daemon"),
            ("[daemons.\"a b\"]\naddr = \"x\"\n", "daemon name 'a b'"),
            (
                "[daemons.a]\naddr = \"x\"\ntoken_file = \"none\"\n",
                "daemons.a.token_file: cannot read",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = read_daemons_file(&path, None, None).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.starts_with("daemons file "), "{err}");
        }
    }
}
