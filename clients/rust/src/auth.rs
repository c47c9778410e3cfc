//! The bearer token sent with every call.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

use crate::ClientError;

/// Adds `authorization: Bearer <token>` to every request when a token is configured.
#[derive(Clone, Debug, Default)]
pub struct BearerAuth {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerAuth {
    /// An interceptor for `token`; `None` or an empty token sends no header.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let header = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => {
                // HTTP/2 would carry other bytes, but gRPC metadata and most proxies expect a
                // token to be visible ASCII; reject anything else here, clearly.
                let invalid =
                    || ClientError::InvalidToken("it must be visible ASCII without spaces".into());
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid());
                }
                let mut value: MetadataValue<Ascii> =
                    format!("Bearer {token}").parse().map_err(|_| invalid())?;
                // Keeps the token out of Debug output and HTTP/2 header compression tables.
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(BearerAuth { header })
    }
}

impl Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_becomes_a_bearer_header() {
        let mut auth = BearerAuth::new(Some("s3cret")).expect("valid token");
        let request = auth
            .call(tonic::Request::new(()))
            .expect("interceptor never fails");
        let value = request.metadata().get("authorization").expect("header set");
        assert_eq!(value.to_str().ok(), Some("Bearer s3cret"));
    }

    #[test]
    fn no_or_empty_token_sends_no_header() {
        for token in [None, Some(""), Some("  ")] {
            let mut auth = BearerAuth::new(token).expect("valid");
            let request = auth
                .call(tonic::Request::new(()))
                .expect("interceptor never fails");
            assert!(request.metadata().get("authorization").is_none());
        }
    }

    #[test]
    fn non_ascii_token_is_rejected() {
        let err = BearerAuth::new(Some("tök\n")).expect_err("invalid");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
