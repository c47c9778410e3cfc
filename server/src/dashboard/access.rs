//! Who may read the dashboard, and the headers every answer carries.
//!
//! With a token, a browser opens any page once with `?token=TOKEN`: the answer sets an HttpOnly,
//! SameSite=Strict cookie and redirects to the same address without the token (so it stays out
//! of the history, bookmarks and the Referer). Scripts may send `Authorization: Bearer TOKEN`
//! instead. The token never appears in a page or a log.
//!
//! Without a token the dashboard only answers requests whose `Host` is `localhost` or an IP
//! address: a web page elsewhere cannot read it through DNS rebinding, which needs a domain
//! name of the attacker's (this holds on loopback, and behind a port published on loopback by
//! Docker, where the daemon itself listens on every interface of its container).
//!
//! The cookie is named for the dashboard's port (cookies ignore ports, and two daemons on one
//! host with different tokens would overwrite each other's).

use std::net::SocketAddr;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::api::ApiError;

#[derive(Clone)]
pub struct Access {
    /// The token's bytes, hex-encoded as the cookie carries it (any printable token fits a cookie).
    token_hex: Option<String>,
    token: Option<String>,
    /// `strata_token_PORT`.
    cookie_name: String,
    /// Served over HTTPS: the cookie is `Secure` (never sent over plain HTTP).
    https: bool,
}

impl Access {
    pub fn new(token: Option<String>, https: bool, bound: SocketAddr) -> Access {
        Access {
            token_hex: token.as_deref().map(hex),
            token,
            cookie_name: format!("strata_token_{}", bound.port()),
            https,
        }
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `Host` header no DNS rebinding can forge: `localhost` or an IP address (`127.0.0.1`,
/// `[::1]`, `10.0.0.5`), with any port. Rebinding needs a name the attacker's DNS answers for.
fn is_unforgeable_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn cookie_token<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| value)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

/// A query value with its `%XX` escapes decoded (`+` is a space); None when malformed.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's `token` parameter (still escaped), and the query without it.
fn split_token(query: &str) -> (Option<&str>, String) {
    let (mut token, mut rest) = (None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("token=") {
            Some(value) => token = Some(value),
            None => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

/// The access check, then the route, then the headers every answer carries.
pub async fn check(State(access): State<Access>, request: Request, next: Next) -> Response {
    let mut response = match refusal(&access, &request) {
        None => as_json_error(next.run(request).await).await,
        Some(refused) => refused,
    };
    let headers = response.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The longest plain-text error turned into JSON.
const MAX_PLAIN_ERROR_BYTES: usize = 4096;

/// An error axum answered itself in plain text (a path that is not UTF-8, a malformed query), as
/// the JSON error every other answer gives.
async fn as_json_error(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = response.status();
    if !(plain && status.is_client_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), MAX_PLAIN_ERROR_BYTES)
        .await
        .unwrap_or_default();
    ApiError::new(status, String::from_utf8_lossy(&body).trim().to_string()).into_response()
}

/// The answer a request gets instead of its route, if it may not go on.
fn refusal(access: &Access, request: &Request) -> Option<Response> {
    let headers = request.headers();
    if access.token.is_none() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_unforgeable_host(host) {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Host '{}' is a name: without a token the dashboard answers only localhost or an IP address (a web page elsewhere could rebind a name to this machine); open it by its address, or give the daemon a token", host.chars().take(100).collect::<String>()),
            )
            .into_response());
        }
    }
    let (Some(token), Some(token_hex)) = (&access.token, &access.token_hex) else {
        return None;
    };
    let query = request.uri().query().unwrap_or("");
    if let (Some(given), rest) = split_token(query) {
        let given = percent_decoded(given).unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Some(
                ApiError::new(StatusCode::UNAUTHORIZED, "the token is wrong").into_response(),
            );
        }
        // One leading slash: `//host/x` would send the browser to another site.
        let path = format!("/{}", request.uri().path().trim_start_matches('/'));
        let location = if rest.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{rest}")
        };
        let cookie = format!(
            "{}={token_hex}; HttpOnly; SameSite=Strict; Path=/{}",
            access.cookie_name,
            if access.https { "; Secure" } else { "" }
        );
        let mut response = StatusCode::SEE_OTHER.into_response();
        for (name, value) in [(header::LOCATION, location), (header::SET_COOKIE, cookie)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        return Some(response);
    }
    let by_cookie = cookie_token(headers, &access.cookie_name)
        .is_some_and(|c| constant_time_eq(c.as_bytes(), token_hex.as_bytes()));
    let by_bearer = bearer_token(headers)
        .is_some_and(|b| constant_time_eq(b.trim().as_bytes(), token.as_bytes()));
    if by_cookie || by_bearer {
        return None;
    }
    Some(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this dashboard needs the daemon's token: open it once as http://HOST:PORT/?token=TOKEN (a cookie keeps it), or send Authorization: Bearer TOKEN",
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_apart_from_addresses() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:9",
            "[::1]:80",
            "[::1]",
            "LOCALHOST",
            "10.0.0.1",
            "[fe80::1]:80",
        ] {
            assert!(is_unforgeable_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_unforgeable_host(host), "{host}");
        }
    }

    #[test]
    fn the_token_is_taken_out_of_the_query() {
        assert_eq!(split_token("token=abc"), (Some("abc"), String::new()));
        assert_eq!(
            split_token("runs=a,b&token=abc&x=1"),
            (Some("abc"), "runs=a,b&x=1".into())
        );
        assert_eq!(split_token("runs=a"), (None, "runs=a".into()));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decoded("a%26b%2Bc+d").as_deref(), Some("a&b+c d"));
        assert_eq!(percent_decoded("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decoded("bad%2"), None);
        assert_eq!(percent_decoded("bad%zz"), None);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; strata_token_8080=6869; strata_token_9=ff; b=2"),
        );
        assert_eq!(cookie_token(&headers, "strata_token_8080"), Some("6869"));
        assert_eq!(cookie_token(&headers, "strata_token_9"), Some("ff"));
        assert_eq!(hex("hi"), "6869");
    }
}
