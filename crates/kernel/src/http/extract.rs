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
        if let Some(field) = nul_in(&value) {
            return Err(Problem::validation(vec![FieldError::new(&field, "nul_character", NUL_IN_TEXT)]));
        }
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
///
/// A string holding U+0000 is refused as a data error too: PostgreSQL's text cannot store it, and what one
/// engine refuses none accepts.
pub fn from_json_text<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(field) = nul_in(&value) {
        return Err(<serde_json::Error as serde::de::Error>::custom(format!("`{field}`: {NUL_IN_TEXT}")));
    }
    serde_json::from_value(value)
}

const NUL_IN_TEXT: &str = "Text may not contain the NUL character (U+0000).";

/// The top-level field (or `body`) of the first string in `value` holding U+0000, keys included.
fn nul_in(value: &serde_json::Value) -> Option<String> {
    fn holds(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(holds),
            serde_json::Value::Object(fields) => fields.iter().any(|(key, value)| key.contains('\0') || holds(value)),
            _ => false,
        }
    }
    match value {
        serde_json::Value::Object(fields) => fields
            .iter()
            .find(|(key, value)| key.contains('\0') || holds(value))
            .map(|(key, _)| key.replace('\0', "\\u0000")),
        other => holds(other).then(|| "body".to_owned()),
    }
}

/// Whether percent-encoded text (a path or a query) encodes U+0000, which no stored text may hold.
fn encodes_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with a 400 problem when a segment does not parse (e.g. a malformed id) or
/// encodes U+0000.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if encodes_nul(parts.uri.path()) {
            return Err(Problem::bad_request("invalid_path_parameter", NUL_IN_TEXT));
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// `axum::extract::Query` with a 400 problem for a malformed query string, or one encoding U+0000.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(encodes_nul) {
            return Err(Problem::bad_request("invalid_query", NUL_IN_TEXT));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

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
    fn text_holding_nul_is_refused_wherever_it_is() {
        #[derive(Debug, serde::Deserialize)]
        struct Post {
            #[allow(dead_code)]
            content: String,
        }
        for body in [
            &br#"{"content":"a\u0000b"}"#[..],
            br#"{"content":"x","extra":[{"k":"\u0000"}]}"#,
            br#"{"content":"x","\u0000":1}"#,
        ] {
            let refused = from_json_text::<Post>(body).expect_err("NUL");
            assert!(refused.is_data(), "{refused}");
            assert!(refused.to_string().contains("U+0000"), "{refused}");
        }
        assert_eq!(nul_in(&serde_json::json!({"content": "a\u{0}"})).as_deref(), Some("content"));
        assert_eq!(nul_in(&serde_json::json!(["\u{0}"])).as_deref(), Some("body"));
        assert_eq!(nul_in(&serde_json::json!({"content": "返品 \\u0000 is text"})), None);
        assert!(encodes_nul("q=a%00b") && !encodes_nul("q=%100") && !encodes_nul("q=a%2500"));
    }

    #[test]
    fn a_type_error_is_reported_against_the_body() {
        let error = field_error_from_serde("invalid type: integer `1`, expected a string at line 1 column 12");
        assert_eq!((error.field.as_str(), error.reason.as_str()), ("body", "invalid_type"));
    }
}
