//! The pages and their scripts, compiled into the binary: nothing is fetched at run time. Plain
//! HTML, CSS and JavaScript, no build step; the one library is uPlot, vendored (see
//! `assets/vendor/README.md`).

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};

use super::api::{run_name, ApiError};

/// Every asset: its name under `/assets/`, its content type, its bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.css",
        "text/css",
        include_str!("assets/dashboard.css"),
    ),
    (
        "common.js",
        "text/javascript",
        include_str!("assets/common.js"),
    ),
    ("runs.js", "text/javascript", include_str!("assets/runs.js")),
    ("run.js", "text/javascript", include_str!("assets/run.js")),
    (
        "charts.js",
        "text/javascript",
        include_str!("assets/charts.js"),
    ),
    (
        "compare.js",
        "text/javascript",
        include_str!("assets/compare.js"),
    ),
    (
        "sweep.js",
        "text/javascript",
        include_str!("assets/sweep.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
];

fn html(page: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

pub async fn runs_page() -> Response {
    html(include_str!("assets/runs.html"))
}

/// The run page; the run itself is read by its script (a bad name is still a 404 here).
pub async fn run_page(Path(run): Path<String>) -> Result<Response, ApiError> {
    run_name(&run)?;
    Ok(html(include_str!("assets/run.html")))
}

pub async fn compare_page() -> Response {
    html(include_str!("assets/compare.html"))
}

/// The sweep page; the sweep itself is read by its script.
pub async fn sweep_page() -> Response {
    html(include_str!("assets/sweep.html"))
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no asset '{}'", file.chars().take(100).collect::<String>()),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
}
