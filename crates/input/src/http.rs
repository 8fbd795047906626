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
use kernel::http::{ClientIp, Json, Path};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
        .post("/public/api/v1/inboxes/{inbox_identifier}/contacts", create_contact)
        .post("/public/api/v1/inboxes/{inbox_identifier}/contacts/{source_id}/messages", post_contact_message)
        .get("/public/api/v1/inboxes/{inbox_identifier}/contacts/{source_id}/messages", list_contact_messages)
        .post("/public/api/v1/inboxes/{inbox_identifier}/messages", post_signed_message)
}

/// `POST …/contacts`: a widget-style client identifies its user; the answer's `source_id` is what it
/// posts and reads messages with.
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

#[derive(Debug, Deserialize)]
struct ContactMessage {
    content: String,
}

/// `POST …/contacts/{source_id}/messages`: a widget contact writes.
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

#[derive(Debug, Serialize)]
struct Transcript {
    source_id: String,
    messages: Vec<TranscriptMessage>,
}

#[derive(Debug, Serialize)]
struct TranscriptMessage {
    id: MessageId,
    /// `incoming` (from the contact) or `outgoing` (an agent's reply).
    kind: Direction,
    content: String,
    created_at: i64,
    /// Replies only: `pending`, `sent` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_status: Option<DeliveryStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_reason: Option<String>,
}

/// `GET …/contacts/{source_id}/messages`: the contact's transcript, oldest first.
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

/// `POST …/messages`: a server that holds the inbox's secret posts for one of its users. The raw body is
/// read first, because the signature covers the exact bytes; it is parsed only once verified.
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

/// 202 with the message's id; a replay says so in `Idempotent-Replayed`.
fn accepted(outcome: Accepted) -> Response {
    let (message, replayed) = match outcome {
        Accepted::New(message) => (message, false),
        Accepted::Replayed(message) => (message, true),
    };
    let mut response = (StatusCode::ACCEPTED, Json(json!({ "id": message, "status": "accepted" }))).into_response();
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}
