//! The JSON routes the pages read, each bounded: a list of at most [`MAX_LISTED_RUNS`], a
//! comparison of at most [`MAX_COMPARED_RUNS`], run names of sane length. Errors are JSON
//! `{"error": "...", "status": N}` naming the problem and what is allowed.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{json, Dashboard};
use crate::{
    analysis::Thresholds,
    domain::{RunStatus, Verdict},
    error::StrataError,
    runs::{EpochsWanted, ListFilter},
};

/// Runs one list answer holds; the page shows how many were left out.
pub const MAX_LISTED_RUNS: usize = 500;
/// Runs listed when the page does not say.
const DEFAULT_LISTED_RUNS: usize = 100;
/// Runs one comparison overlays: 100 runs of 1,000 epochs draw in well under a second, and the
/// answer (two losses an epoch) stays a few megabytes.
pub const MAX_COMPARED_RUNS: usize = 100;
/// The longest run name (an id or a prefix) looked up; ids are 13 or 16 characters.
const MAX_RUN_NAME_CHARS: usize = 64;
/// The longest tag filter.
const MAX_TAG_CHARS: usize = 256;

/// An error as the browser reads it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {message}"))
    }
}

impl From<StrataError> for ApiError {
    fn from(err: StrataError) -> ApiError {
        let message = crate::error::truncated(err.to_string(), 1024);
        let status = match err {
            StrataError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            StrataError::RunNotFound(_) => StatusCode::NOT_FOUND,
            StrataError::AmbiguousRun { .. } => StatusCode::BAD_REQUEST,
            StrataError::FailedPrecondition(_) => StatusCode::CONFLICT,
            StrataError::AtLimit(_) => StatusCode::TOO_MANY_REQUESTS,
            StrataError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            StrataError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            StrataError::DataDamaged(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StrataError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, json_body(&body)).into_response()
    }
}

/// A JSON answer.
pub fn json_body(value: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A run name from the path: an id or a unique prefix, checked for length and characters before
/// it reaches the store.
pub fn run_name(run: &str) -> Result<&str, ApiError> {
    let fits = !run.is_empty()
        && run.chars().count() <= MAX_RUN_NAME_CHARS
        && run.chars().all(|c| c.is_ascii_alphanumeric());
    if fits {
        Ok(run)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no run '{}': a run is named by its id or a unique prefix of it (letters and digits, at most {MAX_RUN_NAME_CHARS})",
                run.chars().take(MAX_RUN_NAME_CHARS).collect::<String>()
            ),
        ))
    }
}

fn parse_status(value: &str) -> Result<RunStatus, ApiError> {
    RunStatus::ALL
        .into_iter()
        .find(|s| s.label() == value)
        .ok_or_else(|| {
            let allowed: Vec<_> = RunStatus::ALL.iter().map(|s| s.label()).collect();
            ApiError::bad(
                "status",
                format!(
                    "'{}' is not a status; one of {}",
                    value.chars().take(40).collect::<String>(),
                    allowed.join(", ")
                ),
            )
        })
}

fn parse_verdict(value: &str) -> Result<Verdict, ApiError> {
    Verdict::ALL
        .into_iter()
        .find(|v| v.label() == value)
        .ok_or_else(|| {
            let allowed: Vec<_> = Verdict::ALL.iter().map(|v| v.label()).collect();
            ApiError::bad(
                "verdict",
                format!(
                    "'{}' is not a verdict; one of {}",
                    value.chars().take(40).collect::<String>(),
                    allowed.join(", ")
                ),
            )
        })
}

/// `status`, `tag`, `verdict`, `sweep` and `limit` from the query; empty values mean no filter.
fn list_filter(query: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    let given = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let limit = match given("limit") {
        None => DEFAULT_LISTED_RUNS,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LISTED_RUNS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LISTED_RUNS}"),
                ))
            }
        },
    };
    let tag = given("tag").map(str::to_string);
    if tag.as_ref().is_some_and(|t| t.len() > MAX_TAG_CHARS) {
        return Err(ApiError::bad(
            "tag",
            format!("longer than {MAX_TAG_CHARS} bytes"),
        ));
    }
    let sweep = given("sweep").map(str::to_string);
    if sweep.as_ref().is_some_and(|s| s.len() > MAX_TAG_CHARS) {
        return Err(ApiError::bad(
            "sweep",
            format!("longer than {MAX_TAG_CHARS} bytes"),
        ));
    }
    Ok(ListFilter {
        status: given("status").map(parse_status).transpose()?,
        tag,
        sweep,
        verdict: given("verdict").map(parse_verdict).transpose()?,
        // One more than shown, to say whether the list was cut.
        limit: Some(limit + 1),
    })
}

/// `GET /api/runs?status=&tag=&verdict=&sweep=&limit=` → `{"runs":[...],"limit":N,"more":bool}`, newest
/// first.
pub async fn list(
    State(dashboard): State<Dashboard>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = list_filter(&query)?;
    let limit = filter.limit.unwrap_or(1) - 1;
    let mut runs = dashboard.runs.list_analysed(filter).await?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    let rows: Vec<Value> = runs
        .iter()
        .map(|(state, analysis)| json::run_summary(state, analysis))
        .collect();
    Ok(json_body(
        &json!({ "runs": rows, "limit": limit, "more": more }),
    ))
}

/// `GET /api/workers` → the remote workers connected now (see [`json::workers`]).
pub async fn workers(State(dashboard): State<Dashboard>) -> Response {
    json_body(&json::workers(dashboard.runs.remote_workers()))
}

/// `GET /api/runs/RUN[?epochs=false]` → the run, its epochs (at most [`MAX_RETURNED_EPOCHS`]: a
/// longer run's are an even spread keeping the first, best and last, and `epochs_thinned` is
/// true) and its analysis.
///
/// [`MAX_RETURNED_EPOCHS`]: crate::runs::MAX_RETURNED_EPOCHS
pub async fn run(
    State(dashboard): State<Dashboard>,
    Path(run): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let run = run_name(&run)?;
    let with_epochs = match query.get("epochs").map(String::as_str) {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(ApiError::bad("epochs", "must be true or false")),
    };
    let wanted = if with_epochs {
        EpochsWanted::Whole
    } else {
        EpochsWanted::None
    };
    let detail = dashboard
        .runs
        .get(run, Thresholds::default(), wanted)
        .await?;
    Ok(json_body(&json::run_detail(&detail, with_epochs)))
}

/// `GET /api/runs/RUN/steps[?max_points=N]` → the run's step records by column (see
/// [`json::run_steps`]): every stored step up to N (default 2,000, at most 20,000), else an even
/// spread keeping the first and the last.
pub async fn run_steps(
    State(dashboard): State<Dashboard>,
    Path(run): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let run = run_name(&run)?;
    let max_points = match query.get("max_points") {
        None => 0,
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| ApiError::bad("max_points", "a whole number of steps, at most 20000"))?,
    };
    let steps = dashboard.runs.run_steps(run, max_points).await?;
    Ok(json_body(&json::run_steps(&steps)))
}

/// `GET /api/compare?runs=A,B,...` → `strata compare --json`'s answer, with each run's losses.
pub async fn compare(
    State(dashboard): State<Dashboard>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let names: Vec<&str> = query
        .get("runs")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad(
            "runs",
            "name the runs to compare: ?runs=ID,ID,...",
        ));
    }
    if names.len() > MAX_COMPARED_RUNS {
        return Err(ApiError::bad(
            "runs",
            format!(
                "{} runs named; at most {MAX_COMPARED_RUNS} are compared at once",
                names.len()
            ),
        ));
    }
    let names = names
        .into_iter()
        .map(|n| run_name(n).map(str::to_string))
        .collect::<Result<Vec<_>, _>>()?;
    let comparison = dashboard.runs.compare(names, Thresholds::default()).await?;
    Ok(json_body(&json::comparison(&comparison)))
}

/// Any other path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no page or API at '{}': the pages are /, /runs/RUN, /compare?runs=A,B and /sweeps/SWEEP; the API is under /api/",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_filters_are_checked_and_bounded() {
        let filter = list_filter(&query(&[("status", "running"), ("verdict", "good")])).unwrap();
        assert_eq!(filter.status, Some(RunStatus::Running));
        assert_eq!(filter.limit, Some(DEFAULT_LISTED_RUNS + 1));
        for bad in [
            ("status", "runnin"),
            ("verdict", "great"),
            ("limit", "0"),
            ("limit", "501"),
            ("limit", "x"),
        ] {
            let err = list_filter(&query(&[bad])).err().unwrap();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(bad.0), "{}", err.message);
        }
    }

    #[test]
    fn run_names_are_letters_and_digits_of_sane_length() {
        assert!(run_name("k3f9").is_ok());
        for bad in ["", "../etc", "a b", &"a".repeat(65)] {
            assert_eq!(run_name(bad).err().unwrap().status, StatusCode::NOT_FOUND);
        }
    }
}
