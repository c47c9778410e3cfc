//! A request body that is not a valid protobuf message for its call is the client's mistake:
//! tonic answers it with INTERNAL (gRPC's own advice for parse errors); Strata answers
//! INVALID_ARGUMENT, so clients and their retry logic see whose fault it is.

use tonic::{
    codegen::{http, BoxFuture, Context, Poll, Service},
    server::NamedService,
};

/// How the client's malformed requests begin in `grpc-message` (percent-encoded as tonic sends
/// it): prost's decode error, and a body that ends inside a message. (A compressed flag without
/// an encoding stays INTERNAL: the gRPC spec says it MUST.)
const MALFORMED_PREFIXES: [&str; 2] = [
    "failed%20to%20decode%20Protobuf%20message",
    "Unexpected%20EOF%20decoding%20stream",
];
const INTERNAL: &str = "13";
const INVALID_ARGUMENT: &str = "3";

/// Wraps a gRPC service so that its request-decoding failures come back as INVALID_ARGUMENT.
#[derive(Clone, Debug)]
pub struct MalformedIsInvalid<S>(pub S);

impl<S: NamedService> NamedService for MalformedIsInvalid<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for MalformedIsInvalid<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let response = self.0.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            relabel(response.headers_mut());
            Ok(response)
        })
    }
}

/// A trailers-only error response (how tonic answers a request it could not decode) carries
/// its status in the headers.
fn relabel(headers: &mut http::HeaderMap) {
    let is_internal = headers
        .get("grpc-status")
        .is_some_and(|status| status == INTERNAL);
    let is_decode_error = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| MALFORMED_PREFIXES.iter().any(|p| m.starts_with(p)));
    if is_internal && is_decode_error {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_static(INVALID_ARGUMENT),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decode_errors_are_relabelled() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("13"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static(
                "failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type",
            ),
        );
        relabel(&mut headers);
        assert_eq!(headers["grpc-status"], "3");

        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("13"));
        headers.insert(
            "grpc-message",
            http::HeaderValue::from_static("storage%20error"),
        );
        relabel(&mut headers);
        assert_eq!(headers["grpc-status"], "13");
    }
}
