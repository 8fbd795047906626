//! Accepting what customers send: input parsed into validated values at the edge, then recorded once.
//!
//! Every accepted post is, in one transaction of this namespace, recorded raw (`inbound_events`, unique by
//! inbox and Idempotency-Key), appended to the contact's transcript and published as
//! `input.message_received`. The answer is sent right after the commit; the inbox service creates the
//! contact, conversation and message from the event. A retry with the same key and body gets the first
//! answer again and changes nothing.
//!
//! Posts are recorded in batches by the service's recorder (`recorder.rs`), which answers each exactly as
//! recording it on its own here ([`Input::accept_alone`]) would; that path remains for a batch that fails.

use axum::http::HeaderMap;
use contracts::channel::{ChannelContact, ContactIdentified, MessageReceived};
use contracts::inbox::{InboxId, MessageId};
use contracts::plan::Limited;
use kernel::http::FieldError;
use kernel::store::StoreError;
use serde::Deserialize;
use sha2::Digest as _;

use crate::channels::Channel;
use crate::recorder::{Answer, Submission};
use crate::store::{ContactDetails, ContactRow, NewEntry, NewInbound, Store};
use crate::{Input, InputError};
use kernel::clock::now_ms;

/// The longest message we accept, in characters.
pub const MAX_CONTENT_CHARS: usize = 10_000;
/// The longest Idempotency-Key, source id and contact name, in characters.
pub const MAX_KEY_CHARS: usize = 255;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_PHONE_CHARS: usize = 32;

/// The header that makes a post safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Who chose a contact's source id: the caller of the signed route, or us (widget-style clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Server,
    Widget,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Server => "server",
            Origin::Widget => "widget",
        }
    }
}

/// A contact's details as a client sends them (all optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContactFields {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The body of the signed server-to-server route.
#[derive(Debug, Deserialize)]
pub struct SignedPost {
    pub contact: SignedContact,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct SignedContact {
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

impl Input {
    /// Creates a widget contact with a fresh, unguessable source id, and reports it.
    pub async fn identify_contact(
        &self,
        channel: &Channel,
        details: ContactDetailsInput,
    ) -> Result<ChannelContact, InputError> {
        let source_id = kernel::auth::opaque_token("src_");
        let mut tx = self.store.begin().await?;
        Store::upsert_contact(
            &mut tx,
            ContactDetails {
                inbox: channel.inbox,
                source_id: &source_id,
                origin: Origin::Widget.as_str(),
                name: details.name.as_deref(),
                email: details.email.as_deref(),
                phone: details.phone.as_deref(),
                now_ms: now_ms(),
            },
        )
        .await?;
        let contact = ChannelContact { source_id, name: details.name, email: details.email, phone: details.phone };
        tx.publish(&ContactIdentified { account: channel.account, inbox: channel.inbox, contact: contact.clone() })
            .await?;
        tx.commit().await?;
        tracing::info!(inbox.id = %channel.inbox, "widget contact identified");
        Ok(contact)
    }

    /// The widget contact `source_id` of `channel`; contacts the signed route created are not reachable
    /// here, since their ids are chosen by the caller and may be guessable.
    pub async fn widget_contact(&self, channel: &Channel, source_id: &str) -> Result<ContactRow, InputError> {
        if source_id.len() > MAX_KEY_CHARS {
            return Err(InputError::ContactNotFound);
        }
        match self.store.contact(channel.inbox, source_id).await? {
            Some(contact) if contact.origin == Origin::Widget.as_str() => Ok(contact),
            _ => Err(InputError::ContactNotFound),
        }
    }

    /// Records `post` on `channel` once (see the module docs), in a batch with whatever other posts are
    /// waiting to be recorded.
    pub async fn accept(&self, channel: &Channel, post: Post) -> Result<Accepted, InputError> {
        let origin = post.origin;
        let (answer, answered) = tokio::sync::oneshot::channel();
        // The request's id goes with the post, so its event carries it although the recorder writes it.
        let trace = kernel::http::current_request_id().and_then(|id| id.to_str().ok().map(str::to_owned));
        let submission = Submission { inbox: channel.inbox, account: channel.account, post, trace, answer };
        let answer = match self.recorder.send(submission).await {
            // A recorder that dropped a post without answering has failed mid-batch: whether the post was
            // recorded is unknown, so it is not recorded again here (a retry with its key is safe).
            Ok(()) => answered.await.map_err(|_| InputError::RecorderStopped)?,
            // The recorder has stopped (the namespace is closing): as when a batch fails.
            Err(refused) => Answer::Alone(refused.0.post),
        };
        match answer {
            Answer::Recorded(accepted) => {
                if let Ok(Accepted::New(message)) = accepted {
                    tracing::info!(inbox.id = %channel.inbox, message.id = %message, origin = origin.as_str(), "inbound message accepted");
                }
                accepted
            }
            Answer::Alone(post) => self.accept_alone(channel, post).await,
        }
    }

    /// Records `post` on `channel` once, on its own: several statements and a transaction of its own.
    pub(crate) async fn accept_alone(&self, channel: &Channel, post: Post) -> Result<Accepted, InputError> {
        if let Some(key) = &post.idempotency_key
            && let Some(earlier) = self.store.inbound_by_key(channel.inbox, key).await?
        {
            return replay(&earlier.body_sha256, &earlier.message_id, &post.body_sha256);
        }
        if let Some(signature) = post.signature(channel.inbox)
            && !self.store.signatures_used(&[signature]).await?.is_empty()
        {
            return Err(InputError::SignatureReplayed);
        }
        let source_id = post.contact.source_id.as_str();
        let known = self.store.contact(channel.inbox, source_id).await?;
        // A contact's first message starts their conversation (inbox keeps one per contact and reopens it),
        // which the plan counts; ask before recording anything.
        if known.as_ref().is_none_or(|c| c.first_message_at.is_none()) {
            let allowance = self.plan.allowance(channel.account, Limited::ConversationsPerMonth, 0).await?;
            if !allowance.allowed {
                return Err(InputError::PlanLimit(Box::new(allowance)));
            }
        }

        let message = MessageId::new();
        let message_id = message.to_string();
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let recorded = Store::insert_inbound(
            &mut tx,
            NewInbound {
                inbox: channel.inbox,
                idempotency_key: post.idempotency_key.as_deref(),
                body_sha256: &post.body_sha256,
                payload: &post.payload,
                source_id,
                message_id: &message_id,
                signed_at: post.signed_at,
                now_ms: now,
            },
        )
        .await;
        match recorded {
            Ok(()) => {}
            // The same key was recorded between our look-up and this insert (two copies of one retry racing):
            // answer as a replay of whichever won. Otherwise it was the signature (two copies of a captured
            // request racing under different keys).
            Err(StoreError::UniqueViolation { .. }) => {
                drop(tx);
                let key = post.idempotency_key.as_deref().unwrap_or_default();
                return match self.store.inbound_by_key(channel.inbox, key).await? {
                    Some(earlier) => replay(&earlier.body_sha256, &earlier.message_id, &post.body_sha256),
                    None if post.signed_at.is_some() => Err(InputError::SignatureReplayed),
                    None => Err(InputError::Corrupt("an idempotency key collided but its event is missing".to_owned())),
                };
            }
            Err(other) => return Err(other.into()),
        }
        Store::upsert_contact(
            &mut tx,
            ContactDetails {
                inbox: channel.inbox,
                source_id,
                origin: post.origin.as_str(),
                name: post.contact.name.as_deref(),
                email: post.contact.email.as_deref(),
                phone: post.contact.phone.as_deref(),
                now_ms: now,
            },
        )
        .await?;
        let starts_conversation = Store::start_conversation(&mut tx, channel.inbox, source_id, now).await?;
        let contact = Store::contact_in(&mut tx, channel.inbox, source_id).await?.map_or(post.contact.clone(), |row| {
            ChannelContact { source_id: row.source_id, name: row.name, email: row.email, phone: row.phone }
        });
        Store::append_transcript(
            &mut tx,
            NewEntry {
                message_id: &message_id,
                inbox: channel.inbox,
                source_id,
                direction: "incoming",
                content: &post.content,
                conversation_id: None,
                created_at: now,
                delivery_status: None,
            },
        )
        .await?;
        tx.publish(&MessageReceived {
            account: channel.account,
            inbox: channel.inbox,
            message,
            contact,
            content: post.content,
            received_at: now,
        })
        .await?;
        tx.commit().await?;
        tracing::info!(inbox.id = %channel.inbox, message.id = %message, origin = post.origin.as_str(), "inbound message accepted");

        if starts_conversation
            && let Err(error) = self.plan.record_usage(channel.account, Limited::ConversationsPerMonth, 1).await
        {
            // The message is recorded and will be delivered; a missed count only under-bills, so it is
            // logged rather than failing a post the client would then retry.
            tracing::warn!(account.id = %channel.account, error = %error, "conversation usage not recorded");
        }
        Ok(Accepted::New(message))
    }
}

/// The answer to a post whose key was recorded before: a replay of the same body, else a reused key.
pub(crate) fn replay(earlier_sha256: &str, earlier_message: &str, sha256: &str) -> Result<Accepted, InputError> {
    if earlier_sha256 != sha256 {
        return Err(InputError::IdempotencyKeyReused);
    }
    let message = earlier_message.parse().map_err(|_| InputError::Corrupt("inbound message id".to_owned()))?;
    Ok(Accepted::Replayed(message))
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
