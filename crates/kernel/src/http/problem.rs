//! The one error shape every OmniDesk endpoint answers with: `application/problem+json` (RFC 9457).
//!
//! Policy, for every handler in every service:
//! - A client mistake is a 4xx [`Problem`] with a stable, machine-readable `code` (snake_case) and a `detail`
//!   a person can act on. Validation failures add one [`FieldError`] per offending field.
//! - Anything else is [`Problem::internal`]: the client learns only that it was our fault and the request id;
//!   the cause is logged once, here, and never sent.
//! - Handlers return `Result<_, E>` where `E: Into<Problem>`; service error enums implement that conversion,
//!   so the mapping from domain error to status lives in one `match` per service.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document with OmniDesk's extensions (`code`, `errors`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` plus a `code` is enough for our clients.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase, for people.
    pub title: String,
    /// The HTTP status, repeated in the body as RFC 9457 recommends.
    pub status: u16,
    /// The stable machine-readable code clients switch on, e.g. `email_taken`.
    pub code: String,
    /// What went wrong in this occurrence, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// One entry per invalid input field (422 responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Further members specific to one `code` (RFC 9457 §3.2), e.g. which plan limit was reached.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(ignore)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`); not part of the body.
    #[serde(skip)]
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// Why one input field was rejected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name as the client sent it (`email`, `password`).
    pub field: String,
    /// A stable machine-readable reason (`invalid_format`, `too_short`, `unsupported`).
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, reason: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), reason: reason.to_owned(), message: message.into() }
    }
}

impl Problem {
    /// A problem with the given status and code; the title is the status's reason phrase.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn conflict(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn forbidden(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    /// 401 with the `WWW-Authenticate` challenge clients expect.
    pub fn unauthorized(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 422 listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "One or more fields are invalid; see `errors`.",
        );
        problem.errors = errors;
        problem
    }

    /// 429 telling the client how long to wait.
    pub fn too_many_requests(code: &str, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, format!("Too many attempts; retry after {retry_after_secs} s."))
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)))
    }

    /// 500 for a failure that is ours. The cause is logged here, once, and not sent to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "The server failed to handle this request; it has been logged.",
        )
    }

    /// The problem for a failed store call: 503 `database_unavailable` (with `Retry-After`) while the
    /// database cannot be reached and 503 `service_moving` while a move of the namespace holds writes
    /// (`omnidesk data move`), so clients and load balancers retry; otherwise a 500 ([`Problem::internal`]).
    pub fn from_store(error: &crate::store::StoreError) -> Self {
        if error.is_moving() {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_moving",
                "This service's data is being moved to another database; reads still answer, writes resume in a \
                 few seconds.",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from(2));
        }
        if !error.is_unavailable() {
            return Self::internal(error);
        }
        tracing::warn!(%error, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "The database is unreachable; retry shortly.",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(1))
    }

    /// The generic problem for a bare status produced outside our handlers (router, layers).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => ("not_found", "No route matches this path."),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "This path does not accept this method."),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body exceeds the size limit."),
            StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long to handle."),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Send `Content-Type: application/json`."),
            StatusCode::SERVICE_UNAVAILABLE => ("service_unavailable", "The service is unavailable; retry later."),
            s if s.is_client_error() => ("bad_request", "The request was not understood."),
            _ => ("internal_error", "The server failed to handle this request; it has been logged."),
        };
        Self::new(status, code, detail)
    }

    /// Adds a member to the body, next to `code`.
    pub fn with_extension(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = self.status_code();
        let headers = std::mem::take(&mut self.headers);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Makes a service's error enum an answer: the problem it converts to (it implements
/// `From<TheError> for Problem`, where each variant's status, code and wording are decided once).
#[macro_export]
macro_rules! answered_as_problem {
    ($error:ty) => {
        impl ::axum::response::IntoResponse for $error {
            fn into_response(self) -> ::axum::response::Response {
                ::axum::response::IntoResponse::into_response($crate::http::Problem::from(self))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_renders_as_problem_json_with_its_headers() {
        let response = Problem::too_many_requests("login_rate_limited", 30).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
    }

    #[test]
    fn a_bare_status_maps_to_a_stable_code() {
        assert_eq!(Problem::from_status(StatusCode::METHOD_NOT_ALLOWED).code, "method_not_allowed");
        assert_eq!(Problem::from_status(StatusCode::IM_A_TEAPOT).code, "bad_request");
        assert_eq!(Problem::from_status(StatusCode::BAD_GATEWAY).code, "internal_error");
    }
}
