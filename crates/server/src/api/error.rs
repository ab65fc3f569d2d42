//! Errors as Argo CD's API returns them: `{error, code, message}` with a gRPC code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The gRPC status codes Argo CD's API writes in an error's `code`; the one place that says what each
/// number means and which HTTP status Argo CD's gateway answers with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum GrpcCode {
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl GrpcCode {
    const ALL: [GrpcCode; 11] = [
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::Unauthenticated,
    ];

    /// The number on the wire.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// The code of a number on the wire; a number berth never answers with is `Unknown`.
    pub fn from_number(number: u16) -> GrpcCode {
        GrpcCode::ALL.into_iter().find(|c| c.number() == number).unwrap_or(GrpcCode::Unknown)
    }

    /// The HTTP status Argo CD's gRPC gateway answers with this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            GrpcCode::InvalidArgument | GrpcCode::FailedPrecondition => StatusCode::BAD_REQUEST,
            GrpcCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            GrpcCode::NotFound => StatusCode::NOT_FOUND,
            GrpcCode::AlreadyExists => StatusCode::CONFLICT,
            GrpcCode::PermissionDenied => StatusCode::FORBIDDEN,
            GrpcCode::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            GrpcCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            GrpcCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            GrpcCode::Unknown | GrpcCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error as Argo CD's API returns it.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status: the code's own ([`GrpcCode::http_status`]) unless a transport limit says otherwise.
    pub status: StatusCode,
    pub code: GrpcCode,
    pub message: String,
}

impl ApiError {
    /// An error with `code` and the HTTP status Argo CD's gateway gives it.
    pub fn new(code: GrpcCode, message: impl Into<String>) -> Self {
        ApiError { status: code.http_status(), code, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::NotFound, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::InvalidArgument, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::Unauthenticated, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::PermissionDenied, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::Internal, message)
    }
    /// The request is valid but the object's state does not allow it now (an operation already runs).
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::FailedPrecondition, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        ApiError::new(GrpcCode::AlreadyExists, message)
    }
    /// The same error answered with another HTTP status (a transport limit: 413, 415).
    pub fn with_status(self, status: StatusCode) -> Self {
        ApiError { status, ..self }
    }
    /// An account error, with the gRPC code the accounts module gives it.
    pub(crate) fn from_auth(e: &crate::auth::AuthError) -> Self {
        ApiError::new(GrpcCode::from_number(e.grpc_code()), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({"error": self.message, "code": self.code.number(), "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// A Kubernetes API error as Argo CD answers it: 404, 409 and invalid requests keep their meaning.
pub(crate) fn kube_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(s) if s.code == 404 => ApiError::not_found(s.message.clone()),
        kube::Error::Api(s) if s.code == 409 => ApiError::already_exists(s.message.clone()),
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => ApiError::bad_request(s.message.clone()),
        other => ApiError::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_argo_cds_shape() {
        let e = ApiError::not_found("applications.argoproj.io \"x\" not found");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, GrpcCode::NotFound);
        assert_eq!(e.code.number(), 5);
    }

    #[test]
    fn each_code_keeps_its_number_and_the_gateways_http_status() {
        for code in GrpcCode::ALL {
            assert_eq!(GrpcCode::from_number(code.number()), code);
        }
        assert_eq!(GrpcCode::from_number(1), GrpcCode::Unknown);
        assert_eq!(ApiError::failed_precondition("busy").status, StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::already_exists("x").status, StatusCode::CONFLICT);
        assert_eq!(GrpcCode::Unavailable.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(GrpcCode::ResourceExhausted.http_status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn the_body_carries_the_code_as_its_number() {
        let response = ApiError::forbidden("permission denied").into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "permission denied", "code": 7, "message": "permission denied"})
        );
    }
}
