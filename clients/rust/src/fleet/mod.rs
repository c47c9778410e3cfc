//! [`Fleet`]: the daemons a client talks to, each with a short name, asked concurrently; the ones
//! that could not be reached are kept aside with their error, so the rest still answer.
//!
//! `addresses` says where the daemons are (`--addr`, a daemons file, `dns:` names); `compare`
//! merges the comparisons several daemons made of their own runs.

mod addresses;
mod compare;

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

pub use addresses::{default_daemons_file, read_daemons_file, resolve, DaemonSpec, DEFAULT_PORT};
pub use compare::merge_comparisons;
use strata_proto::{AnalysisThresholds, GetRunResponse, ListRunsRequest, ServerInfo};
use tokio::task::JoinSet;

use crate::{Client, ClientError};

/// The longest a [`Fleet::connect`] waits for all daemons together (name resolution and
/// connecting); each connection has its own shorter limit too. A daemon that has not answered by
/// then is unreachable.
const FLEET_CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// A daemon that answered, and its client.
#[derive(Clone, Debug)]
pub struct Daemon {
    pub name: String,
    pub client: Client,
}

/// A daemon that could not be asked, and why (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    pub name: String,
    pub addr: String,
    pub reason: String,
}

impl Unreachable {
    fn of(name: &str, addr: &str, err: &ClientError) -> Unreachable {
        Unreachable {
            name: name.to_string(),
            addr: addr.to_string(),
            reason: err.to_string(),
        }
    }
}

/// The daemons a client talks to.
#[derive(Debug)]
pub struct Fleet {
    daemons: Vec<Daemon>,
    /// Daemons that did not answer: when connecting, or in a later call of [`Fleet::ask_all`].
    unreachable: Mutex<Vec<Unreachable>>,
    /// Whether more than one daemon is configured, or a `dns:` name that may stand for several.
    several: bool,
}

/// What [`Fleet::find_run`] found.
#[derive(Debug)]
pub struct FoundRun<'a> {
    pub daemon: &'a Daemon,
    pub run: GetRunResponse,
}

/// Why [`Fleet::find_run`] found no one run.
#[derive(Debug)]
pub enum FindRunError {
    /// A daemon answered with an error other than "no such run" (an ambiguous prefix on that
    /// daemon, a bad token, ...).
    Daemon {
        daemon: Box<Daemon>,
        error: ClientError,
    },
    /// No reachable daemon has the run; `unreachable` could not be asked.
    NotFound {
        run: String,
        unreachable: Vec<Unreachable>,
    },
    /// The prefix names runs on several daemons: `(daemon name, run id)` for each.
    Ambiguous {
        run: String,
        matches: Vec<(String, String)>,
    },
}

impl std::fmt::Display for FindRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FindRunError::Daemon { daemon, error } => write!(f, "{} says: {error}", daemon.name),
            FindRunError::NotFound { run, unreachable } => {
                let names: Vec<String> = unreachable
                    .iter()
                    .map(|u| named_at(&u.name, &u.addr))
                    .collect();
                write!(
                    f,
                    "no run matches '{run}' on the daemons that answered; {} could not be asked",
                    names.join(", ")
                )
            }
            FindRunError::Ambiguous { run, matches } => {
                let found: Vec<String> = matches
                    .iter()
                    .map(|(daemon, id)| format!("{id} on {daemon}"))
                    .collect();
                write!(
                    f,
                    "'{run}' matches runs on several daemons ({}); type more of the id",
                    found.join(", ")
                )
            }
        }
    }
}

/// Whether two addresses name the same endpoint as the client connects to it
/// (`127.0.0.1:50051` and `http://127.0.0.1:50051/` do): the same daemon twice would make every
/// run id ambiguous and list every run twice.
fn same_endpoint(a: &str, b: &str) -> bool {
    let normal = |addr: &str| {
        crate::endpoint_uri(addr)
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    normal(a) == normal(b)
}

impl Fleet {
    /// One daemon already connected: a fleet that behaves exactly as that one client.
    pub fn single(name: String, client: Client) -> Fleet {
        Fleet {
            daemons: vec![Daemon { name, client }],
            unreachable: Mutex::new(Vec::new()),
            several: false,
        }
    }

    /// Resolves `dns:` names and connects to every daemon at once, waiting at most
    /// [`FLEET_CONNECT_TIMEOUT`]. Daemons that answered are kept in the order given (a `dns:`
    /// name's in address order, a daemon named twice once); the others are listed in
    /// [`Fleet::unreachable`]. Never fails: a fleet may have no daemon (check [`Fleet::is_empty`]).
    pub async fn connect(specs: Vec<DaemonSpec>) -> Fleet {
        let named_by_dns = specs.iter().any(DaemonSpec::is_dns);
        let mut unreachable = Vec::new();
        let mut resolved: Vec<DaemonSpec> = Vec::new();
        for (spec, outcome) in Self::resolve_all(specs).await {
            match outcome {
                Ok(specs) => {
                    for spec in specs {
                        if !resolved
                            .iter()
                            .any(|seen| same_endpoint(&seen.addr, &spec.addr))
                        {
                            resolved.push(spec);
                        }
                    }
                }
                Err(err) => unreachable.push(Unreachable::of(&spec.name, &spec.addr, &err)),
            }
        }
        let several = named_by_dns || resolved.len() + unreachable.len() > 1;
        let mut tasks = JoinSet::new();
        for (index, spec) in resolved.iter().cloned().enumerate() {
            tasks.spawn(async move {
                let DaemonSpec {
                    name: _,
                    addr,
                    token,
                    tls_ca,
                } = spec;
                (index, Client::connect_with(&addr, token, tls_ca).await)
            });
        }
        let mut connected: Vec<Option<Client>> = vec![None; resolved.len()];
        let mut errors: Vec<Option<ClientError>> = (0..resolved.len()).map(|_| None).collect();
        let _ = tokio::time::timeout(FLEET_CONNECT_TIMEOUT, async {
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((index, Ok(client))) => connected[index] = Some(client),
                    Ok((index, Err(err))) => errors[index] = Some(err),
                    // A connect task cannot panic short of a bug in tonic; it counts as no answer.
                    Err(_) => {}
                }
            }
        })
        .await;
        let mut daemons = Vec::new();
        for ((spec, client), error) in resolved.iter().zip(connected).zip(errors) {
            match (client, error) {
                (Some(client), _) => daemons.push(Daemon {
                    name: spec.name.clone(),
                    client,
                }),
                (None, Some(err)) => {
                    unreachable.push(Unreachable::of(&spec.name, &spec.addr, &err))
                }
                (None, None) => unreachable.push(Unreachable {
                    name: spec.name.clone(),
                    addr: spec.addr.clone(),
                    reason: format!(
                        "cannot reach stratad at {}: no answer within {} s",
                        spec.addr,
                        FLEET_CONNECT_TIMEOUT.as_secs()
                    ),
                }),
            }
        }
        Fleet {
            daemons,
            unreachable: Mutex::new(unreachable),
            several,
        }
    }

    /// Every spec with its `dns:` name resolved (or the error), concurrently.
    async fn resolve_all(
        specs: Vec<DaemonSpec>,
    ) -> Vec<(DaemonSpec, Result<Vec<DaemonSpec>, ClientError>)> {
        let mut tasks = JoinSet::new();
        for (index, spec) in specs.iter().cloned().enumerate() {
            tasks.spawn(async move { (index, resolve(spec).await) });
        }
        let mut outcomes: Vec<Option<Result<Vec<DaemonSpec>, ClientError>>> =
            (0..specs.len()).map(|_| None).collect();
        let _ = tokio::time::timeout(FLEET_CONNECT_TIMEOUT, async {
            while let Some(Ok((index, outcome))) = tasks.join_next().await {
                outcomes[index] = Some(outcome);
            }
        })
        .await;
        specs
            .into_iter()
            .zip(outcomes)
            .map(|(spec, outcome)| {
                let outcome = outcome.unwrap_or_else(|| {
                    Err(ClientError::Connect {
                        addr: spec.addr.clone(),
                        reason: "name resolution took too long".into(),
                    })
                });
                (spec, outcome)
            })
            .collect()
    }

    /// The daemons that answered when connecting, in the order configured.
    pub fn daemons(&self) -> &[Daemon] {
        &self.daemons
    }

    /// Whether no daemon answered.
    pub fn is_empty(&self) -> bool {
        self.daemons.is_empty()
    }

    /// Whether more than one daemon is configured (or a `dns:` name): output then says which
    /// daemon each run is on.
    pub fn is_several(&self) -> bool {
        self.several
    }

    /// The daemons that could not be asked so far, with why.
    pub fn unreachable(&self) -> Vec<Unreachable> {
        self.unreachable_list().clone()
    }

    fn unreachable_list(&self) -> std::sync::MutexGuard<'_, Vec<Unreachable>> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The daemon called `name`.
    pub fn daemon(&self, name: &str) -> Option<&Daemon> {
        self.daemons.iter().find(|daemon| daemon.name == name)
    }

    /// Asks every daemon at once with `ask`, and returns each answer with its daemon, in the
    /// fleet's order. A daemon whose connection fails is moved to [`Fleet::unreachable`] and left
    /// out (unless it is the only one, or none is left); any other error (the daemon answered
    /// no) is returned with the daemon that said it.
    pub async fn ask_all<T, F, Fut>(
        &self,
        ask: F,
    ) -> Result<Vec<(&Daemon, T)>, (Daemon, ClientError)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>> + Send + 'static,
        T: Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for (index, daemon) in self.daemons.iter().enumerate() {
            let call = ask(daemon.client.clone());
            tasks.spawn(async move { (index, call.await) });
        }
        let mut answers: Vec<Option<Result<T, ClientError>>> =
            (0..self.daemons.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, answer)) = joined {
                answers[index] = Some(answer);
            }
        }
        let mut answered = Vec::new();
        let mut first_lost: Option<(Daemon, ClientError)> = None;
        for (daemon, answer) in self.daemons.iter().zip(answers) {
            match answer {
                Some(Ok(value)) => answered.push((daemon, value)),
                // One daemon alone is the answer: losing it is the error, as it always was.
                Some(Err(err)) if err.is_connection_error() && self.several => {
                    let lost = Unreachable::of(&daemon.name, daemon.client.addr(), &err);
                    let mut unreachable = self.unreachable_list();
                    if !unreachable.contains(&lost) {
                        unreachable.push(lost);
                    }
                    first_lost.get_or_insert((daemon.clone(), err));
                }
                Some(Err(err)) => return Err((daemon.clone(), err)),
                None => {
                    let mut unreachable = self.unreachable_list();
                    unreachable.push(Unreachable {
                        name: daemon.name.clone(),
                        addr: daemon.client.addr().to_string(),
                        reason: "its call ended without an answer".into(),
                    });
                }
            }
        }
        // No daemon left to answer: that is an error, not an empty answer.
        match first_lost {
            Some(lost) if answered.is_empty() => Err(lost),
            _ => Ok(answered),
        }
    }

    /// Every daemon's version, devices and load, for placing runs (see [`free_slots`]).
    pub async fn server_infos(&self) -> Result<Vec<(&Daemon, ServerInfo)>, (Daemon, ClientError)> {
        self.ask_all(|client| async move { client.server_info().await })
            .await
    }

    /// The one daemon that has run `run` (an id or a unique prefix), with the run as
    /// [`Client::get_run`] answers it. One daemon is asked alone, so its own errors come back
    /// as they are; several are asked at once, and a prefix that matches on two is an error.
    /// `thresholds` override the analysis's (see [`Client::get_run_with`]).
    pub async fn find_run(
        &self,
        run: &str,
        thresholds: Option<AnalysisThresholds>,
    ) -> Result<FoundRun<'_>, FindRunError> {
        if let [daemon] = self.daemons.as_slice() {
            return match daemon.client.get_run_with(run, thresholds).await {
                Ok(found) => Ok(FoundRun { daemon, run: found }),
                Err(error) => Err(FindRunError::Daemon {
                    daemon: Box::new(daemon.clone()),
                    error,
                }),
            };
        }
        let name = run.to_string();
        let answers = self
            .ask_all(|client| {
                let name = name.clone();
                async move {
                    match client.get_run_with(&name, thresholds).await {
                        Ok(found) => Ok(Some(found)),
                        Err(err) if err.code() == tonic::Code::NotFound => Ok(None),
                        Err(err) => Err(err),
                    }
                }
            })
            .await
            .map_err(|(daemon, error)| FindRunError::Daemon {
                daemon: Box::new(daemon),
                error,
            })?;
        let mut found: Vec<FoundRun<'_>> = answers
            .into_iter()
            .filter_map(|(daemon, found)| found.map(|run| FoundRun { daemon, run }))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => {
                let unreachable = self.unreachable();
                if unreachable.is_empty() {
                    // Every daemon said "no such run": say it as one daemon would.
                    let error = ClientError::from(tonic::Status::not_found(format!(
                        "no run matches '{run}' on any of the {} daemons",
                        self.daemons.len()
                    )));
                    Err(FindRunError::Daemon {
                        daemon: Box::new(self.daemons[0].clone()),
                        error,
                    })
                } else {
                    Err(FindRunError::NotFound {
                        run: run.to_string(),
                        unreachable,
                    })
                }
            }
            _ => Err(FindRunError::Ambiguous {
                run: run.to_string(),
                matches: found
                    .iter()
                    .map(|f| {
                        let id = f.run.run.as_ref().map_or("?", |r| r.id.as_str());
                        (f.daemon.name.clone(), id.to_string())
                    })
                    .collect(),
            }),
        }
    }

    /// The daemon of each of `runs` (ids or unique prefixes), in order. Several runs on several
    /// daemons are looked up in one `ListRuns` per daemon (a run's id begins with the prefix
    /// on exactly one daemon); a name that does not resolve so is asked with
    /// [`Fleet::find_run`], whose error says what is wrong.
    pub async fn find_daemons(&self, runs: &[String]) -> Result<Vec<&Daemon>, FindRunError> {
        if let [only] = self.daemons.as_slice() {
            return Ok(vec![only; runs.len()]);
        }
        let listings = self
            .ask_all(|client| async move {
                let every_run = ListRunsRequest::default();
                Ok(client.list_runs(every_run).await?.runs)
            })
            .await
            .map_err(|(daemon, error)| FindRunError::Daemon {
                daemon: Box::new(daemon),
                error,
            })?;
        let mut found = Vec::with_capacity(runs.len());
        for run in runs {
            // (daemon, how many of its runs begin with `run`), for the daemons with any.
            let matching: Vec<(&Daemon, usize)> = listings
                .iter()
                .map(|(daemon, listed)| {
                    let count = listed.iter().filter(|r| r.id.starts_with(run.as_str()));
                    (*daemon, count.count())
                })
                .filter(|(_, count)| *count > 0)
                .collect();
            match matching.as_slice() {
                [(daemon, 1)] => found.push(*daemon),
                _ => found.push(self.find_run(run, None).await?.daemon),
            }
        }
        Ok(found)
    }
}

/// `NAME at ADDR`, or the name alone when it is the address.
pub fn named_at(name: &str, addr: &str) -> String {
    if addr.trim_start_matches("http://") == name {
        name.to_string()
    } else {
        format!("{name} at {addr}")
    }
}

/// Slots a daemon can give a new run without queueing it: `max_concurrent_runs` less the runs
/// training and queued. Negative when runs already wait, so the least loaded daemon is the
/// greatest even when all are full.
pub fn free_slots(info: &ServerInfo) -> i64 {
    // A daemon's connected remote workers train its runs too.
    i64::from(info.max_concurrent_runs) + i64::from(info.remote_workers)
        - i64::from(info.running_runs)
        - i64::from(info.queued_runs)
}

/// The daemon with the most [`free_slots`]; the first one configured among equals.
pub fn most_free<'a>(infos: &[(&'a Daemon, ServerInfo)]) -> Option<&'a Daemon> {
    let mut best: Option<(&'a Daemon, i64)> = None;
    for (daemon, info) in infos {
        let free = free_slots(info);
        if best.is_none_or(|(_, most)| free > most) {
            best = Some((daemon, free));
        }
    }
    best.map(|(daemon, _)| daemon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_written_two_ways_is_one_daemon() {
        assert!(same_endpoint("127.0.0.1:50051", "http://127.0.0.1:50051/"));
        assert!(same_endpoint("HTTP://Gpu1:50051", "http://gpu1:50051"));
        assert!(!same_endpoint("127.0.0.1:50051", "127.0.0.1:50052"));
        assert!(!same_endpoint("http://gpu1:50051", "https://gpu1:50051"));
    }

    #[test]
    fn free_slots_count_running_and_queued_runs() {
        let info = |max, running, queued| ServerInfo {
            max_concurrent_runs: max,
            running_runs: running,
            queued_runs: queued,
            ..ServerInfo::default()
        };
        assert_eq!(free_slots(&info(4, 1, 0)), 3);
        assert_eq!(free_slots(&info(1, 1, 2)), -2);
    }

    #[tokio::test]
    async fn unreachable_daemons_are_set_aside_with_their_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let spec = DaemonSpec::from_addr(&format!("127.0.0.1:{port}"), None, None);
        let fleet = Fleet::connect(vec![spec.clone(), spec]).await;
        assert!(fleet.is_empty());
        assert!(!fleet.is_several(), "one address named twice is one daemon");
        let unreachable = fleet.unreachable();
        assert_eq!(unreachable.len(), 1);
        assert_eq!(unreachable[0].name, format!("127.0.0.1:{port}"));
        assert!(unreachable[0].reason.contains("cannot reach stratad"));
    }
}
