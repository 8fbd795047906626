//! The API channel's public routes. None takes a bearer token: the inbox identifier in the path names the
//! channel, a signature proves the server-to-server caller, and a widget contact's random source id is its
//! capability.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use contracts::channel::{ChannelContact, DeliveryStatus};
use contracts::inbox::MessageId;
use kernel::http::{ClientIp, Json, Path, Problem};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::channel_signature;
use crate::domain::{Direction, Origin};
use crate::post::{self, Accepted, ContactFields, Post, SignedPost};
use crate::{Input, InputError};
use kernel::clock::now_secs;

type AppState = Arc<Input>;

/// How many transcript lines a contact gets back: the latest ones, enough for any chat window.
const TRANSCRIPT_LIMIT: i64 = 500;

/// Set on an answer repeated for a retried post.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(routes!(create_contact))
        .route(routes!(post_contact_message, list_contact_messages))
        .route(routes!(post_signed_message))
}

/// Creates a widget contact
///
/// A widget-style client (a browser chat window, an app) identifies its user to the inbox; every detail is
/// optional. The answer's `source_id` is fresh and unguessable: it is the contact's capability, with which
/// the client posts and reads the contact's messages, so the client keeps it. Public (no access token);
/// limited per client IP to `widget_contacts_per_ip_per_minute` new contacts (default 60) and
/// `widget_requests_per_ip_per_minute` widget requests (default 600) a minute.
#[utoipa::path(post, path = "/public/api/v1/inboxes/{inbox_identifier}/contacts",
    params(("inbox_identifier" = String, Path, description = "The inbox's public identifier (`inb_…`)")),
    request_body(content = ContactFields, description = "What the client knows of its user; every field is optional"),
    responses(
        (status = 201, description = "The contact, with its new `source_id`", body = ChannelContact),
        (status = 400, description = "`malformed_json`: the body is not JSON text; `unreadable_body`: it could not be \
            read; `invalid_path_parameter`: a path segment is not UTF-8", body = Problem),
        (status = 404, description = "`inbox_not_found`: no open inbox has this identifier", body = Problem),
        (status = 422, description = "`validation_failed`: `errors` names each invalid field (`name`, `email`, `phone`: \
            `invalid_format`; a mistyped field: `body`, `invalid_type`)", body = Problem),
        (status = 429, description = "`widget_rate_limited`: this client IP created too many contacts or made too many \
            widget requests this minute", body = Problem,
            headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
))]
async fn create_contact(
    State(input): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(identifier): Path<String>,
    Json(fields): Json<ContactFields>,
) -> Result<Response, InputError> {
    input.widget_limits.contact(ip)?;
    let channel = input.open_channel(&identifier).await?;
    let mut errors = Vec::new();
    let details = post::check_contact(fields, "", &mut errors);
    if !errors.is_empty() {
        return Err(InputError::Invalid(errors));
    }
    let contact: ChannelContact = input.identify_contact(&channel, details).await?;
    Ok((StatusCode::CREATED, Json(contact)).into_response())
}

/// What a widget contact writes.
#[derive(Debug, Deserialize, ToSchema)]
struct ContactMessage {
    /// The message: not blank, at most 10,000 characters.
    #[schema(min_length = 1, max_length = 10000)]
    content: String,
}

/// Posts a widget contact's message
///
/// The contact `source_id` (one `POST …/contacts` created) writes to the inbox. The message is recorded
/// once and reported to the inbox service, which adds it to the contact's conversation; the answer is
/// 202 with its id. An `idempotency-key` makes the post safe to retry: a retry with the same key and
/// content is answered as the first post was (with `idempotent-replayed: true`) and changes nothing. A
/// contact's first message starts a conversation, which the account's plan counts. Public (no access
/// token); limited per client IP to `widget_requests_per_ip_per_minute` widget requests a minute.
#[utoipa::path(post, path = "/public/api/v1/inboxes/{inbox_identifier}/contacts/{source_id}/messages",
    params(
        ("inbox_identifier" = String, Path, description = "The inbox's public identifier (`inb_…`)"),
        ("source_id" = String, Path, description = "The widget contact's `source_id`, as `POST …/contacts` answered it"),
        ("idempotency-key" = Option<String>, Header, description = "Optional: makes the post safe to retry. At most \
            255 visible ASCII characters (spaces allowed; leading and trailing ones are trimmed), not blank; a retry \
            sends the same key with the same content"),
    ),
    request_body(content = ContactMessage, description = "The message"),
    responses(
        (status = 202, description = "Accepted: recorded once and reported to the inbox service", body = AcceptedMessage,
            headers(("idempotent-replayed" = String, description = "`true` when this answers a retry of a post accepted \
                before (same key and content); absent otherwise"))),
        (status = 400, description = "`idempotency_key_required`: the `idempotency-key` header is blank; \
            `idempotency_key_invalid`: it is longer than 255 characters or not visible ASCII; `malformed_json`: the body \
            is not JSON text; `unreadable_body`; `invalid_path_parameter`: a path segment is not UTF-8", body = Problem),
        (status = 403, description = "`plan_limit_reached`: the message would start a conversation and the account's \
            plan allows no more this month", body = Problem),
        (status = 404, description = "`inbox_not_found`: no open inbox has this identifier; `contact_not_found`: no \
            widget contact has this source id in this inbox", body = Problem),
        (status = 422, description = "`validation_failed`: `errors` names each invalid field (`content`: `missing`, \
            `blank`, `too_long`; a mistyped field: `body`, `invalid_type`); `idempotency_key_reused`: the key was used \
            before for different content", body = Problem),
        (status = 429, description = "`widget_rate_limited`: this client IP made too many widget requests this minute",
            body = Problem, headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
))]
async fn post_contact_message(
    State(input): State<AppState>,
    ClientIp(ip): ClientIp,
    Path((identifier, source_id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<ContactMessage>,
) -> Result<Response, InputError> {
    input.widget_limits.request(ip)?;
    let channel = input.open_channel(&identifier).await?;
    let contact = input.widget_contact(&channel, &source_id).await?;
    let idempotency_key = post::idempotency_key(&headers, false)?;
    let mut errors = Vec::new();
    post::check_content(&body.content, &mut errors);
    if !errors.is_empty() {
        return Err(InputError::Invalid(errors));
    }
    // The widget route has no raw body worth keeping; the canonical form of what was said (and by whom)
    // is both the audit record and what a retry must repeat.
    let payload = json!({ "source_id": contact.source_id, "content": body.content }).to_string();
    let post = Post {
        idempotency_key,
        body_sha256: post::sha256_hex(payload.as_bytes()),
        payload,
        contact: ChannelContact {
            source_id: contact.source_id,
            name: contact.name,
            email: contact.email,
            phone: contact.phone,
        },
        origin: Origin::Widget,
        content: body.content,
        signed_at: None,
    };
    Ok(accepted(input.accept(&channel, post).await?))
}

/// A widget contact's transcript: what it wrote and the agents' replies, oldest first.
#[derive(Debug, Serialize, ToSchema)]
struct Transcript {
    source_id: String,
    /// The latest 500 lines at most, oldest first.
    messages: Vec<TranscriptMessage>,
}

/// One line of a transcript.
#[derive(Debug, Serialize, ToSchema)]
struct TranscriptMessage {
    id: MessageId,
    /// `incoming` (from the contact) or `outgoing` (an agent's reply).
    kind: Direction,
    content: String,
    /// When it was recorded (Unix ms).
    created_at: i64,
    /// Replies only: `pending`, `sent` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    delivery_status: Option<DeliveryStatus>,
    /// Replies only, when the last delivery attempt failed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    delivery_reason: Option<String>,
}

/// Lists a widget contact's messages
///
/// The transcript of the contact `source_id` (one `POST …/contacts` created): its messages and the agents'
/// replies with their delivery status, oldest first — the latest 500. Public (no access token); limited per
/// client IP to `widget_requests_per_ip_per_minute` widget requests a minute.
#[utoipa::path(get, path = "/public/api/v1/inboxes/{inbox_identifier}/contacts/{source_id}/messages",
    params(
        ("inbox_identifier" = String, Path, description = "The inbox's public identifier (`inb_…`)"),
        ("source_id" = String, Path, description = "The widget contact's `source_id`, as `POST …/contacts` answered it"),
    ),
    responses(
        (status = 200, description = "The transcript", body = Transcript),
        (status = 400, description = "`invalid_path_parameter`: a path segment is not UTF-8", body = Problem),
        (status = 404, description = "`inbox_not_found`: no open inbox has this identifier; `contact_not_found`: no \
            widget contact has this source id in this inbox", body = Problem),
        (status = 429, description = "`widget_rate_limited`: this client IP made too many widget requests this minute",
            body = Problem, headers(("retry-after" = String, description = "Seconds to wait before retrying"))),
))]
async fn list_contact_messages(
    State(input): State<AppState>,
    ClientIp(ip): ClientIp,
    Path((identifier, source_id)): Path<(String, String)>,
) -> Result<Json<Transcript>, InputError> {
    input.widget_limits.request(ip)?;
    let channel = input.open_channel(&identifier).await?;
    let contact = input.widget_contact(&channel, &source_id).await?;
    let rows = input.store.transcript(channel.inbox, &contact.source_id, TRANSCRIPT_LIMIT).await?;
    let messages = rows
        .into_iter()
        .map(|row| TranscriptMessage {
            id: row.message_id,
            kind: row.direction,
            content: row.content,
            created_at: row.created_at,
            delivery_status: row.delivery_status,
            delivery_reason: row.delivery_reason,
        })
        .collect();
    Ok(Json(Transcript { source_id: contact.source_id, messages }))
}

/// Posts a signed message for one of the caller's users
///
/// A server that holds the inbox's secret posts a message on behalf of one of its users, the contact it
/// names by its own `contact.source_id` (created on its first message, its details updated by each). No
/// access token: the `x-omnidesk-signature` header proves the caller. It is
/// `t=<unix seconds>,v1=<hex>`, where `<hex>` is the lower-case hex HMAC-SHA256 of `"<t>.<raw body>"`
/// keyed with the inbox's secret; several `v1=` may be sent (to rotate the secret), one must match, and
/// `t` must be within 300 s of the server's clock. Each signature is accepted once. The
/// `idempotency-key` header is required: a retry with the same key and body is answered as the first post
/// was (with `idempotent-replayed: true`) and changes nothing. The message is recorded once and reported to
/// the inbox service; a contact's first message starts a conversation, which the account's plan counts.
/// Not rate-limited per IP. The raw body is read first, because the signature covers its exact bytes; it
/// is parsed only once verified (unknown fields are ignored, any content type is read as JSON).
#[utoipa::path(post, path = "/public/api/v1/inboxes/{inbox_identifier}/messages",
    params(
        ("inbox_identifier" = String, Path, description = "The inbox's public identifier (`inb_…`)"),
        ("x-omnidesk-signature" = String, Header, description = "`t=<unix seconds>,v1=<hex>[,v1=<hex>…]`: each `v1` \
            the lower-case hex HMAC-SHA256 of `\"<t>.<raw body>\"` keyed with the inbox's secret; `t` within 300 s of \
            now"),
        ("idempotency-key" = String, Header, description = "Makes the post safe to retry: at most 255 visible ASCII \
            characters (spaces allowed; leading and trailing ones are trimmed), not blank; a retry sends the same key \
            with the same body"),
    ),
    request_body(content = SignedPost, content_type = "application/json",
        description = "The message and the contact it is from, as JSON text; the signature covers these exact bytes"),
    responses(
        (status = 202, description = "Accepted: recorded once and reported to the inbox service", body = AcceptedMessage,
            headers(("idempotent-replayed" = String, description = "`true` when this answers a retry of a post accepted \
                before (same key and body); absent otherwise"))),
        (status = 400, description = "`idempotency_key_required`: the `idempotency-key` header is missing or blank; \
            `idempotency_key_invalid`: it is longer than 255 characters or not visible ASCII; `malformed_json`: the body \
            is not JSON text; `unreadable_body`; `invalid_path_parameter`: a path segment is not UTF-8", body = Problem),
        (status = 401, description = "`invalid_signature`: the `x-omnidesk-signature` header is missing or malformed, no \
            `v1` matches the body under the inbox's secret, or its timestamp is more than 300 s from now", body = Problem,
            headers(("www-authenticate" = String, description = "`OmniDesk-Signature`"))),
        (status = 403, description = "`plan_limit_reached`: the message would start a conversation and the account's \
            plan allows no more this month", body = Problem),
        (status = 404, description = "`inbox_not_found`: no open inbox has this identifier", body = Problem),
        (status = 409, description = "`signature_replayed`: this signature (timestamp and body) was accepted before \
            under another `idempotency-key`; sign every new post anew", body = Problem),
        (status = 422, description = "`validation_failed`: `errors` names each invalid field (`contact.source_id`: \
            `blank`, `too_long`, `invalid_format`; `contact.name`, `contact.email`, `contact.phone`: `invalid_format`; \
            `content`: `blank`, `too_long`; a missing field: `missing`; a mistyped one: `body`, `invalid_type`); \
            `idempotency_key_reused`: the key was used before with a different body", body = Problem),
))]
async fn post_signed_message(
    State(input): State<AppState>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, InputError> {
    let channel = input.open_channel(&identifier).await?;
    let header = headers.get(channel_signature::HEADER).map(|v| v.to_str().unwrap_or_default());
    let signed_at =
        channel_signature::verify(header, &body, &channel.secret, now_secs(), channel_signature::TOLERANCE_SECS)?;
    let idempotency_key = post::idempotency_key(&headers, true)?;
    let parsed: SignedPost = kernel::http::from_json_text(&body).map_err(|e| post::json_problem(&e))?;
    let mut errors = Vec::new();
    post::check_source_id(&parsed.contact.source_id, "contact.source_id", &mut errors);
    let details = post::check_contact(parsed.contact.fields, "contact.", &mut errors);
    post::check_content(&parsed.content, &mut errors);
    if !errors.is_empty() {
        return Err(InputError::Invalid(errors));
    }
    let post = Post {
        idempotency_key,
        body_sha256: post::sha256_hex(&body),
        // Exactly the bytes whose signature was verified: JSON text is UTF-8, so nothing is replaced.
        payload: String::from_utf8(body.to_vec()).map_err(|_| InputError::MalformedJson("not UTF-8".to_owned()))?,
        contact: ChannelContact {
            source_id: parsed.contact.source_id,
            name: details.name,
            email: details.email,
            phone: details.phone,
        },
        origin: Origin::Server,
        content: parsed.content,
        signed_at: Some(signed_at),
    };
    Ok(accepted(input.accept(&channel, post).await?))
}

/// A post accepted: recorded once, reported to the inbox service.
#[derive(Debug, Serialize, ToSchema)]
struct AcceptedMessage {
    /// The message's id, under which the inbox service stores it; a retry is answered the same id.
    id: MessageId,
    status: AcceptedStatus,
}

/// Always `accepted`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AcceptedStatus {
    Accepted,
}

/// 202 with the message's id; a replay says so in `Idempotent-Replayed`.
fn accepted(outcome: Accepted) -> Response {
    let (message, replayed) = match outcome {
        Accepted::New(message) => (message, false),
        Accepted::Replayed(message) => (message, true),
    };
    let body = AcceptedMessage { id: message, status: AcceptedStatus::Accepted };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use crate::post::{MAX_CONTENT_CHARS, MAX_KEY_CHARS};

    /// The limits the OpenAPI document states are the ones the checks enforce.
    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        let api = serde_json::to_value(super::routes().openapi()).expect("serialises");
        let schemas = &api["components"]["schemas"];
        for schema in ["SignedPost", "ContactMessage"] {
            assert_eq!(schemas[schema]["properties"]["content"]["maxLength"], MAX_CONTENT_CHARS, "{schema}");
        }
        assert_eq!(schemas["SignedContact"]["allOf"][1]["properties"]["source_id"]["maxLength"], MAX_KEY_CHARS);
    }
}
