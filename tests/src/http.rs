//! A minimal HTTP/1.1 GET for the dashboard's tests (one request per connection): enough to check
//! status codes, headers and JSON bodies without an HTTP client dependency; over TLS too
//! ([`get_tls`]), trusting only the certificate it is given.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use serde_json::Value;

/// An answer: status, headers (names lowercased), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// GETs `path` from `base` (`http://HOST:PORT`) with extra request headers.
pub fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let stream = connect(host);
    exchange(stream, host, path, headers)
}

fn connect(host: &str) -> TcpStream {
    let stream = TcpStream::connect(host).expect("the dashboard accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    stream
}

/// GETs `path` from `base` (`https://HOST:PORT`) over TLS, trusting only the PEM certificate
/// `ca_pem` and checking it names `server_name`; the TLS error when the handshake fails.
pub fn get_tls(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    ca_pem: &[u8],
    server_name: &str,
) -> Result<Answer, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let host = base.trim_start_matches("https://").trim_end_matches('/');
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).expect("a server name");
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = connect(host);
    while connection.is_handshaking() {
        connection
            .complete_io(&mut tcp)
            .map_err(|e| e.to_string())?;
    }
    Ok(exchange(
        rustls::StreamOwned::new(connection, tcp),
        host,
        path,
        headers,
    ))
}

/// Sends the request on `stream` and reads the whole answer (the server closes the connection).
fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify once it has answered: what was read counts.
    if let Err(err) = stream.read_to_end(&mut raw) {
        assert!(
            err.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty(),
            "the answer is read: {err}"
        );
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
