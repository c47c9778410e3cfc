//! Optional bearer-token authentication for every service but health.

use std::sync::Arc;

use tonic::{service::Interceptor, Request, Status};

/// Checks `authorization: Bearer TOKEN` on each call when a token is configured.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<[u8]>>,
}

impl TokenCheck {
    pub fn new(token: Option<&str>) -> Self {
        TokenCheck {
            expected: token.map(|t| Arc::from(t.as_bytes())),
        }
    }
}

/// Compares in time that depends only on the lengths, so a caller cannot learn the token a
/// byte at a time from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        match presented {
            Some(token) if constant_time_eq(token.trim().as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the bearer token is wrong")),
            None => Err(Status::unauthenticated(
                "this daemon requires a bearer token (authorization: Bearer TOKEN)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(check: &mut TokenCheck, header: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        check.call(request).map(|_| ())
    }

    #[test]
    fn only_the_right_token_passes() {
        let mut open = TokenCheck::new(None);
        assert!(call(&mut open, None).is_ok());
        let mut check = TokenCheck::new(Some("s3cret"));
        assert!(call(&mut check, Some("Bearer s3cret")).is_ok());
        assert_eq!(
            call(&mut check, Some("Bearer s3cre")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            call(&mut check, Some("Bearer s3cret!")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            call(&mut check, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(!call(&mut check, Some("Bearer nope"))
            .unwrap_err()
            .message()
            .contains("s3cret"));
    }
}
