//! A post as the public routes receive it and as it is recorded: the bodies clients send, the checks they
//! pass at the edge, the validated [`Post`] and what became of it ([`Accepted`]). Shared by the
//! one-at-a-time path (`inbound.rs`) and the batch recorder (`recorder.rs`).

use axum::http::HeaderMap;
use contracts::channel::ChannelContact;
use contracts::inbox::{InboxId, MessageId};
use kernel::http::FieldError;
use serde::Deserialize;
use sha2::Digest as _;

use crate::InputError;
use crate::domain::Origin;

/// The longest message we accept, in characters.
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// The longest Idempotency-Key, source id and contact name, in characters.
pub const MAX_KEY_CHARS: usize = 255;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_PHONE_CHARS: usize = 32;

/// The header that makes a post safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A contact's details as a client sends them (all optional). Each is trimmed; a blank one counts as
/// absent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ContactFields {
    /// The name agents see: at most 255 characters, no control characters.
    pub name: Option<String>,
    /// An e-mail address (one `@`, a domain with a dot, no spaces), at most 254 characters.
    pub email: Option<String>,
    /// A phone number: at most 32 characters, digits (at least one), spaces and `+ - ( ) .`.
    pub phone: Option<String>,
}

/// The body of the signed server-to-server route.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignedPost {
    pub contact: SignedContact,
    /// The message: not blank, at most 10,000 characters.
    #[schema(min_length = 1, max_length = 10000)]
    pub content: String,
}

/// The contact a signed post is from, named by the caller's own id for its user, with its details.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignedContact {
    /// The caller's id for its user, unique within the inbox (the same id is the same contact): not blank,
    /// at most 255 characters, no control characters.
    #[schema(min_length = 1, max_length = 255)]
    pub source_id: String,
    #[serde(flatten)]
    pub fields: ContactFields,
}

/// A validated post, ready to record.
#[derive(Debug)]
pub struct Post {
    pub idempotency_key: Option<String>,
    /// SHA-256 of what identifies the post's content: the raw body (signed route) or the canonical body
    /// (widget route), so a retry matches and a different message under the same key does not.
    pub body_sha256: String,
    /// What is kept for audit.
    pub payload: String,
    pub contact: ChannelContact,
    pub origin: Origin,
    pub content: String,
    /// The signature's timestamp (signed route; `None` for widget posts): with the body hash it
    /// identifies the signature, which is accepted once per inbox.
    pub signed_at: Option<i64>,
}

impl Post {
    /// The signature this post came with, as it is remembered: (inbox, body hash, timestamp).
    pub fn signature(&self, inbox: InboxId) -> Option<(InboxId, &str, i64)> {
        self.signed_at.map(|signed_at| (inbox, self.body_sha256.as_str(), signed_at))
    }
}

/// What became of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Recorded now.
    New(MessageId),
    /// A retry of a post recorded before; nothing changed.
    Replayed(MessageId),
}

/// The Idempotency-Key header: at most 255 visible ASCII characters; required on the signed route.
pub fn idempotency_key(headers: &HeaderMap, required: bool) -> Result<Option<String>, InputError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return if required { Err(InputError::IdempotencyKeyRequired) } else { Ok(None) };
    };
    let key = value.to_str().map_err(|_| InputError::IdempotencyKeyInvalid("must be visible ASCII"))?.trim();
    if key.is_empty() {
        return Err(InputError::IdempotencyKeyRequired);
    }
    if key.len() > MAX_KEY_CHARS {
        return Err(InputError::IdempotencyKeyInvalid("must be at most 255 characters"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(InputError::IdempotencyKeyInvalid("must be visible ASCII"));
    }
    Ok(Some(key.to_owned()))
}

/// Checks a message's content: not blank, at most [`MAX_CONTENT_CHARS`].
pub fn check_content(content: &str, errors: &mut Vec<FieldError>) {
    if content.trim().is_empty() {
        errors.push(FieldError::new("content", "blank", "`content` must not be empty."));
    } else if content.chars().count() > MAX_CONTENT_CHARS {
        errors.push(FieldError::new(
            "content",
            "too_long",
            format!("`content` must be at most {MAX_CONTENT_CHARS} characters."),
        ));
    }
}

/// Checks a caller-chosen source id: 1–255 characters, no control characters.
pub fn check_source_id(source_id: &str, field: &str, errors: &mut Vec<FieldError>) {
    if source_id.trim().is_empty() {
        errors.push(FieldError::new(field, "blank", format!("`{field}` must not be empty.")));
    } else if source_id.chars().count() > MAX_KEY_CHARS {
        errors.push(FieldError::new(field, "too_long", format!("`{field}` must be at most 255 characters.")));
    } else if source_id.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "invalid_format",
            format!("`{field}` must not contain control characters."),
        ));
    }
}

/// Validated contact details: blank fields become absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactDetailsInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Checks a contact's details; `prefix` names the object in field errors (`contact.` or nothing).
pub fn check_contact(fields: ContactFields, prefix: &str, errors: &mut Vec<FieldError>) -> ContactDetailsInput {
    let present = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (name, email, phone) = (present(fields.name), present(fields.email), present(fields.phone));
    if name.as_deref().is_some_and(|n| n.chars().count() > MAX_KEY_CHARS || n.chars().any(char::is_control)) {
        errors.push(FieldError::new(
            &format!("{prefix}name"),
            "invalid_format",
            "The name must be at most 255 characters, without control characters.",
        ));
    }
    if let Some(email) = email.as_deref()
        && !looks_like_email(email)
    {
        errors.push(FieldError::new(&format!("{prefix}email"), "invalid_format", "This is not an e-mail address."));
    }
    if let Some(phone) = phone.as_deref()
        && !looks_like_phone(phone)
    {
        errors.push(FieldError::new(
            &format!("{prefix}phone"),
            "invalid_format",
            "A phone number has at most 32 characters: digits, spaces and + - ( ) .",
        ));
    }
    ContactDetailsInput { name, email, phone }
}

/// One `@` between a non-empty local part and a domain with a dot, no spaces: the address is only
/// shown to agents, so this catches typos without pretending to validate deliverability.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    email.chars().count() <= MAX_EMAIL_CHARS
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn looks_like_phone(phone: &str) -> bool {
    phone.chars().count() <= MAX_PHONE_CHARS
        && phone.chars().any(|c| c.is_ascii_digit())
        && phone.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    kernel::signature::hex(&sha2::Sha256::digest(bytes))
}

/// A serde_json error as a client problem: syntax → 400 `malformed_json`; a missing or mistyped field →
/// 422 naming it.
pub fn json_problem(error: &serde_json::Error) -> InputError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => {
            let message = error.to_string();
            let field =
                message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
            InputError::Invalid(vec![match field {
                Some(field) => FieldError::new(&field, "missing", format!("`{field}` is required.")),
                None => FieldError::new("body", "invalid_type", message),
            }])
        }
        Category::Syntax | Category::Eof | Category::Io => InputError::MalformedJson(error.to_string()),
    }
}

/// The answer to a post whose key was recorded before: a replay of the same body, else a reused key.
pub(crate) fn replay(earlier_sha256: &str, earlier_message: MessageId, sha256: &str) -> Result<Accepted, InputError> {
    if earlier_sha256 != sha256 {
        return Err(InputError::IdempotencyKeyReused);
    }
    Ok(Accepted::Replayed(earlier_message))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn reasons(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors.iter().map(|e| (e.field.as_str(), e.reason.as_str())).collect()
    }

    #[test]
    fn content_must_not_be_blank() {
        let mut errors = Vec::new();
        check_content(" \n\t", &mut errors);
        assert_eq!(reasons(&errors), [("content", "blank")]);
    }

    #[test]
    fn content_is_limited_in_characters_not_bytes() {
        let mut errors = Vec::new();
        check_content(&"あ".repeat(MAX_CONTENT_CHARS), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");

        check_content(&"a".repeat(MAX_CONTENT_CHARS + 1), &mut errors);
        assert_eq!(reasons(&errors), [("content", "too_long")]);
    }

    #[test]
    fn a_source_id_is_required_short_and_printable() {
        let mut errors = Vec::new();
        check_source_id("", "contact.source_id", &mut errors);
        check_source_id(&"x".repeat(256), "contact.source_id", &mut errors);
        check_source_id("a\u{0}b", "contact.source_id", &mut errors);
        check_source_id("user-42", "contact.source_id", &mut errors);
        assert_eq!(
            reasons(&errors),
            [
                ("contact.source_id", "blank"),
                ("contact.source_id", "too_long"),
                ("contact.source_id", "invalid_format")
            ]
        );
    }

    #[test]
    fn contact_details_are_trimmed_blank_ones_dropped_and_bad_ones_named() {
        let mut errors = Vec::new();
        let details = check_contact(
            ContactFields {
                name: Some("  山田 花子 ".into()),
                email: Some(" ".into()),
                phone: Some("+81 90-1234-5678".into()),
            },
            "contact.",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(details.name.as_deref(), Some("山田 花子"));
        assert_eq!(details.email, None);

        check_contact(
            ContactFields { name: None, email: Some("not-an-address".into()), phone: Some("call me".into()) },
            "",
            &mut errors,
        );
        assert_eq!(reasons(&errors), [("email", "invalid_format"), ("phone", "invalid_format")]);
    }

    #[test]
    fn the_idempotency_key_is_required_only_where_asked_and_limited_to_255_characters() {
        let mut headers = HeaderMap::new();
        assert!(matches!(idempotency_key(&headers, true), Err(InputError::IdempotencyKeyRequired)));
        assert!(matches!(idempotency_key(&headers, false), Ok(None)));

        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("order-42"));
        assert_eq!(idempotency_key(&headers, true).ok().flatten().as_deref(), Some("order-42"));

        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(&"k".repeat(256)).expect("header"));
        assert!(matches!(idempotency_key(&headers, true), Err(InputError::IdempotencyKeyInvalid(_))));
    }

    #[test]
    fn json_errors_are_syntax_or_a_named_field() {
        let syntax = serde_json::from_slice::<SignedPost>(b"{not json").expect_err("fails");
        assert!(matches!(json_problem(&syntax), InputError::MalformedJson(_)));

        let missing = serde_json::from_slice::<SignedPost>(br#"{"contact":{"source_id":"a"}}"#).expect_err("fails");
        let InputError::Invalid(errors) = json_problem(&missing) else { panic!("not a validation error") };
        assert_eq!(reasons(&errors), [("content", "missing")]);
    }
}
