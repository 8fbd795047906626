//! Extractors whose rejections are problems, so malformed input never reaches a handler and never
//! produces anything but a 4xx `application/problem+json`.

use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::problem::{FieldError, Problem};

/// `axum::Json` with problem+json rejections: 415 without a JSON content type, 400 for malformed JSON,
/// 422 naming the field for a missing or mistyped one, 413 for an oversize body.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with a 400 problem when a segment does not parse (e.g. a malformed id).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with a 400 problem for a malformed query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

use axum::extract::FromRequestParts;

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with `Content-Type: application/json`.",
            ),
            JsonRejection::JsonSyntaxError(e) => {
                Problem::bad_request("malformed_json", format!("The body is not valid JSON: {}", source_text(&e)))
            }
            JsonRejection::JsonDataError(e) => Problem::validation(vec![field_error_from_serde(&source_text(&e))]),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            other => Problem::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::bad_request("invalid_path_parameter", rejection.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request("invalid_query", rejection.body_text())
    }
}

/// serde_json's message without axum's "Failed to deserialize…" wrapper.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Turns serde's "missing field `email` at line 1 column 2" into a field error naming `email`.
fn field_error_from_serde(message: &str) -> FieldError {
    let named = |marker: &str| message.strip_prefix(marker).and_then(|rest| rest.split('`').next()).map(str::to_owned);
    if let Some(field) = named("missing field `") {
        return FieldError::new(&field, "missing", format!("`{field}` is required."));
    }
    if let Some(field) = named("unknown field `") {
        return FieldError::new(&field, "unknown", format!("`{field}` is not a known field."));
    }
    FieldError::new("body", "invalid_type", message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_named() {
        let error = field_error_from_serde("missing field `email` at line 1 column 2");
        assert_eq!((error.field.as_str(), error.reason.as_str()), ("email", "missing"));
    }

    #[test]
    fn a_type_error_is_reported_against_the_body() {
        let error = field_error_from_serde("invalid type: integer `1`, expected a string at line 1 column 12");
        assert_eq!((error.field.as_str(), error.reason.as_str()), ("body", "invalid_type"));
    }
}
