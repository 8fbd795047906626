//! Extractors whose rejections are problems, so malformed input never reaches a handler and never
//! produces anything but a 4xx `application/problem+json`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::problem::{FieldError, Problem};

/// `axum::Json` with problem+json rejections: 415 without a JSON content type, 400 for a body that is not
/// JSON text — anywhere in it, fields the handler ignores included (see [`from_json_text`]) —, 422 naming
/// the field for a missing or mistyped one, 413 for an oversize body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsed whole into a JSON tree first: that is what checks every byte of the text.
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(request, state).await?;
        serde_json::from_value(value)
            .map(Json)
            .map_err(|error| Problem::validation(vec![field_error_from_serde(&error.to_string())]))
    }
}

/// Parses `body` as `T`, refusing what is not JSON text anywhere in it (RFC 8259): invalid UTF-8, lone
/// surrogates, numbers out of range, nesting deeper than 128 — in fields `T` ignores too, which a typed
/// parse skips without reading. A body whose unknown fields are not JSON would be accepted while what is
/// kept of it (the raw body, for audit) is not JSON; parsing it into a tree first checks every byte. A
/// syntax error is `Category::Syntax`/`Eof`; one of `T`'s fields missing or mistyped, `Category::Data`.
pub fn from_json_text<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    serde_json::from_value(value)
}

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
    fn text_that_is_not_json_is_refused_even_in_ignored_fields() {
        #[derive(Debug, serde::Deserialize)]
        struct Post {
            #[allow(dead_code)]
            content: String,
        }
        let deep = format!(r#"{{"content":"x","extra":{}{}}}"#, "[".repeat(1_000), "]".repeat(1_000));
        let bodies: [&[u8]; 4] = [
            b"{\"content\":\"x\",\"extra\":\"\xff\xfe\"}",
            br#"{"content":"x","extra":"\ud800"}"#,
            br#"{"content":"x","extra":1e99999}"#,
            deep.as_bytes(),
        ];
        for body in bodies {
            assert!(serde_json::from_slice::<Post>(body).is_ok(), "a typed parse alone takes it");
            let refused = from_json_text::<Post>(body).expect_err("not JSON text");
            assert!(!refused.is_data(), "a syntax error, not a field's: {refused}");
        }
        assert!(from_json_text::<Post>(br#"{"content":"x","extra":[1,{"a":null}]}"#).is_ok());
        assert!(from_json_text::<Post>(br#"{"extra":1}"#).expect_err("missing").is_data());
    }

    #[test]
    fn a_type_error_is_reported_against_the_body() {
        let error = field_error_from_serde("invalid type: integer `1`, expected a string at line 1 column 12");
        assert_eq!((error.field.as_str(), error.reason.as_str()), ("body", "invalid_type"));
    }
}
