//! The inbox service's public routes. Every handler takes the verified [`Caller`] and scopes everything by
//! its account; ids of other accounts are answered exactly like ids that do not exist (404).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::UserId;
use contracts::channel::ChannelKind;
use contracts::inbox::{ContactId, ConversationId, ConversationStatus, InboxId};
use contracts::plan::Feature;
use kernel::auth::Caller;
use kernel::clock::now_ms;
use kernel::http::{FieldError, Json, Path, Problem, Query};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::InboxError;
use crate::desk::{self, Desk, require_manager};
use crate::domain::{CannedResponseId, LabelId, Priority};
use crate::realtime;
use crate::search;
use crate::store::{Before, CannedRow, LabelRow, ListFilter, TabCounts};
use crate::views::{
    CannedView, ContactView, ConversationView, InboxView, LabelView, MessageView, Page, cursor, parse_cursor,
};

type AppState = Arc<Desk>;
type Reply<T> = Result<Json<T>, InboxError>;

/// The longest message, name or canned response accepted, in characters.
const MAX_CONTENT_CHARS: usize = 10_000;
const MAX_NAME_CHARS: usize = 100;
const DEFAULT_PAGE: i64 = 25;
const MAX_PAGE: i64 = 100;

pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(routes!(list_inboxes, create_inbox))
        .route(routes!(get_inbox, update_inbox, delete_inbox))
        .route(routes!(list_inbox_members, set_inbox_members))
        .route(routes!(list_contacts))
        .route(routes!(get_contact, update_contact))
        .route(routes!(list_contact_conversations))
        .route(routes!(list_conversations))
        .route(routes!(get_conversation))
        .route(routes!(list_messages, create_message))
        .route(routes!(change_status))
        .route(routes!(assign_conversation))
        .route(routes!(change_priority))
        .route(routes!(set_conversation_labels))
        .route(routes!(mark_conversation_read))
        .route(routes!(list_labels, create_label))
        .route(routes!(update_label, delete_label))
        .route(routes!(list_canned_responses, create_canned_response))
        .route(routes!(update_canned_response, delete_canned_response))
        .route(routes!(search_everything))
        .route(routes!(realtime::connect_realtime))
}

// Validation helpers: input is parsed once, here, into what the domain takes.

fn text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError::new(field, "required", format!("`{field}` must not be empty.")));
    } else if trimmed.chars().count() > max {
        errors.push(FieldError::new(field, "too_long", format!("`{field}` is limited to {max} characters.")));
    }
    trimmed.to_owned()
}

fn check(errors: Vec<FieldError>) -> Result<(), InboxError> {
    if errors.is_empty() { Ok(()) } else { Err(InboxError::Invalid(errors)) }
}

fn page_limit(limit: Option<i64>) -> Result<i64, InboxError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(InboxError::Invalid(vec![FieldError::new(
            "limit",
            "out_of_range",
            format!("`limit` is between 1 and {MAX_PAGE}."),
        )])),
    }
}

fn before(cursor_param: Option<&str>) -> Result<Before, InboxError> {
    match cursor_param {
        None => Ok(Before::START),
        Some(c) => parse_cursor(c).ok_or_else(|| InboxError::InvalidCursor),
    }
}

// Inboxes.

#[derive(Deserialize, ToSchema)]
struct CreateInbox {
    /// 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$", example = "Website")]
    name: String,
    /// The channel kind; `line` and `email` are answered 422 `channel_not_available` until they are built.
    #[schema(value_type = ChannelKind, example = "api")]
    channel: String,
    /// Where the inbox's replies are delivered: an absolute `http` or `https` URL with a host (blank: none).
    #[serde(default)]
    callback_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct UpdateInbox {
    /// 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$", example = "Website")]
    name: String,
    /// Where the inbox's replies are delivered: an absolute `http` or `https` URL with a host (blank: none).
    #[serde(default)]
    callback_url: Option<String>,
}

/// The account's inboxes.
#[utoipa::path(get, path = "/api/inboxes", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every inbox of the account, oldest first", body = [InboxView]),
    ),
)]
async fn list_inboxes(State(desk): State<AppState>, caller: Caller) -> Reply<Vec<InboxView>> {
    let rows = desk.store.inboxes(caller.account).await?;
    Ok(Json(rows.into_iter().map(InboxView::from).collect()))
}

/// Creates an inbox and its channel endpoint.
///
/// Owners and admins, within the plan's inbox limit. The answer holds the channel's `secret`, which signs
/// what is posted to the endpoint; afterwards only owners and admins see it (`GET /api/inboxes/{id}`).
#[utoipa::path(post, path = "/api/inboxes", security(("bearer" = [])),
    request_body = CreateInbox,
    responses(
        (status = 201, description = "The inbox, with its endpoint `identifier` and `secret`", body = InboxView),
        (status = 403, description = "`forbidden`: owners and admins only; `plan_limit_reached`: the plan's inbox limit", body = Problem),
        (status = 422, description = "`validation_failed` (name, channel, callback_url); `channel_not_available`: LINE and e-mail are not built yet", body = Problem),
    ),
)]
async fn create_inbox(
    State(desk): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateInbox>,
) -> Result<(StatusCode, Json<InboxView>), InboxError> {
    let mut errors = Vec::new();
    let name = text("name", &body.name, MAX_NAME_CHARS, &mut errors);
    let channel = ChannelKind::parse(&body.channel);
    if channel.is_none() {
        errors.push(FieldError::new("channel", "unsupported", "`channel` is one of api, web_widget, line, email."));
    }
    let (Some(channel), true) = (channel, errors.is_empty()) else {
        return Err(InboxError::Invalid(errors));
    };
    let (row, secret) = desk.create_inbox(&caller, name, channel, body.callback_url).await?;
    let mut view = InboxView::from(row);
    view.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

/// One inbox; owners and admins also see its channel `secret`.
#[utoipa::path(get, path = "/api/inboxes/{id}", security(("bearer" = [])),
    params(("id" = InboxId, Path, description = "The inbox")),
    responses(
        (status = 200, description = "The inbox", body = InboxView),
        (status = 404, description = "`inbox_not_found`: no such inbox in your account", body = Problem),
    ),
)]
async fn get_inbox(State(desk): State<AppState>, caller: Caller, Path(id): Path<InboxId>) -> Reply<InboxView> {
    let row = desk.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
    let mut view = InboxView::from(row);
    if caller.role.manages_members() {
        view.secret = desk.input.channel(caller.account, id).await?.map(|c| c.secret);
    }
    Ok(Json(view))
}

/// Renames an inbox and sets where its replies are delivered (`callback_url`).
///
/// Owners and admins.
#[utoipa::path(put, path = "/api/inboxes/{id}", security(("bearer" = [])),
    params(("id" = InboxId, Path, description = "The inbox")),
    request_body = UpdateInbox,
    responses(
        (status = 200, description = "The inbox as stored", body = InboxView),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`inbox_not_found`: no such inbox in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn update_inbox(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
    Json(body): Json<UpdateInbox>,
) -> Reply<InboxView> {
    let mut errors = Vec::new();
    let name = text("name", &body.name, MAX_NAME_CHARS, &mut errors);
    check(errors)?;
    let row = desk.update_inbox(&caller, id, name, body.callback_url).await?;
    Ok(Json(InboxView::from(row)))
}

/// Deletes an inbox that has no conversations, and closes its channel endpoint.
///
/// Owners and admins. Conversations are the account's history: an inbox with any is kept.
#[utoipa::path(delete, path = "/api/inboxes/{id}", security(("bearer" = [])),
    params(("id" = InboxId, Path, description = "The inbox")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`inbox_not_found`: no such inbox in your account", body = Problem),
        (status = 409, description = "`inbox_not_empty`: the inbox has conversations", body = Problem),
    ),
)]
async fn delete_inbox(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
) -> Result<StatusCode, InboxError> {
    desk.delete_inbox(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
struct InboxMembers {
    user_ids: Vec<UserId>,
}

/// Who answers an inbox: the agents who see its conversations.
#[utoipa::path(get, path = "/api/inboxes/{id}/members", security(("bearer" = [])),
    params(("id" = InboxId, Path, description = "The inbox")),
    responses(
        (status = 200, description = "The members' user ids", body = InboxMembers),
        (status = 404, description = "`inbox_not_found`: no such inbox in your account", body = Problem),
    ),
)]
async fn list_inbox_members(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
) -> Reply<InboxMembers> {
    desk.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
    Ok(Json(InboxMembers { user_ids: desk.store.inbox_members(caller.account, id).await? }))
}

/// Sets who answers an inbox; each must be a member of the account.
///
/// Owners and admins. Repetitions are dropped.
#[utoipa::path(put, path = "/api/inboxes/{id}/members", security(("bearer" = [])),
    params(("id" = InboxId, Path, description = "The inbox")),
    request_body = InboxMembers,
    responses(
        (status = 200, description = "The members as stored", body = InboxMembers),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`inbox_not_found`: no such inbox in your account", body = Problem),
        (status = 422, description = "`validation_failed`: a user who is not a member of the account (`not_a_member`), or too many (`too_many`)", body = Problem),
    ),
)]
async fn set_inbox_members(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
    Json(body): Json<InboxMembers>,
) -> Reply<InboxMembers> {
    Ok(Json(InboxMembers { user_ids: desk.set_inbox_members(&caller, id, body.user_ids).await? }))
}

// Contacts.

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// The page size: 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct ContactDetail {
    #[serde(flatten)]
    contact: ContactView,
    identities: Vec<Identity>,
}

#[derive(Serialize, ToSchema)]
struct Identity {
    inbox_id: InboxId,
    source_id: String,
}

#[derive(Deserialize, ToSchema)]
struct UpdateContact {
    /// 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$")]
    name: Option<String>,
    /// 1 to 100 characters after trimming, with an `@`.
    #[schema(pattern = r"^(?=[\s\S]*@)\s*\S(?:[\s\S]{0,98}\S)?\s*$", example = "yamada@example.jp")]
    email: Option<String>,
    /// 1 to 100 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,98}\S)?\s*$")]
    phone: Option<String>,
}

/// The account's contacts, newest first, a page at a time.
#[utoipa::path(get, path = "/api/contacts", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of contacts", body = Page<ContactView>),
        (status = 400, description = "`invalid_cursor`: not a `next_cursor` this API gave", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn list_contacts(
    State(desk): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Reply<Page<ContactView>> {
    let limit = page_limit(query.limit)?;
    let rows = desk.store.contacts(caller.account, before(query.cursor.as_deref())?, limit).await?;
    let next_cursor = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| cursor(r.created_at, r.id)))
        .flatten();
    Ok(Json(Page { data: rows.into_iter().map(ContactView::from).collect(), next_cursor }))
}

/// A contact, with the channel identities it writes from.
#[utoipa::path(get, path = "/api/contacts/{id}", security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact")),
    responses(
        (status = 200, description = "The contact", body = ContactDetail),
        (status = 404, description = "`contact_not_found`: no such contact in your account", body = Problem),
    ),
)]
async fn get_contact(State(desk): State<AppState>, caller: Caller, Path(id): Path<ContactId>) -> Reply<ContactDetail> {
    let row = desk.store.contact(caller.account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    let identities = desk.store.contact_identities(caller.account, id).await?;
    Ok(Json(ContactDetail {
        contact: ContactView::from(row),
        identities: identities.into_iter().map(|(inbox_id, source_id)| Identity { inbox_id, source_id }).collect(),
    }))
}

/// Changes a contact's name, e-mail or phone; absent fields are kept.
#[utoipa::path(put, path = "/api/contacts/{id}", security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact")),
    request_body = UpdateContact,
    responses(
        (status = 200, description = "The contact as stored", body = ContactView),
        (status = 404, description = "`contact_not_found`: no such contact in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn update_contact(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
    Json(body): Json<UpdateContact>,
) -> Reply<ContactView> {
    let mut errors = Vec::new();
    let optional = |field: &str, value: Option<String>, errors: &mut Vec<FieldError>| {
        value.map(|v| text(field, &v, MAX_NAME_CHARS, errors))
    };
    let name = optional("name", body.name, &mut errors);
    let email = optional("email", body.email, &mut errors);
    let phone = optional("phone", body.phone, &mut errors);
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        errors.push(FieldError::new("email", "invalid_format", "`email` must be an e-mail address."));
    }
    check(errors)?;
    let row = desk::update_contact(&desk, &caller, id, name, email, phone).await?;
    Ok(Json(ContactView::from(row)))
}

/// A contact's conversations the caller can see, latest activity first.
#[utoipa::path(get, path = "/api/contacts/{id}/conversations", security(("bearer" = [])),
    params(("id" = ContactId, Path, description = "The contact")),
    responses(
        (status = 200, description = "The conversations", body = [ConversationView]),
        (status = 404, description = "`contact_not_found`: no such contact in your account", body = Problem),
    ),
)]
async fn list_contact_conversations(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ContactId>,
) -> Reply<Vec<ConversationView>> {
    desk.store.contact(caller.account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    let member = (!caller.role.manages_members()).then_some(caller.user);
    let rows = desk.store.contact_conversations(caller.account, id, member).await?;
    Ok(Json(rows.into_iter().map(ConversationView::from).collect()))
}

// Conversations.

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// open (default), pending, resolved, snoozed or all.
    #[param(pattern = "^(?:open|pending|resolved|snoozed|all)$")]
    status: Option<String>,
    inbox_id: Option<InboxId>,
    /// `me`, `unassigned`, `all` (default) or a user id.
    assignee: Option<String>,
    label: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// The page size: 1 to 100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A page of the conversation list, with the tabs' counts.
#[derive(Serialize, ToSchema)]
struct ConversationList {
    data: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
    meta: ListMeta,
}

#[derive(Serialize, ToSchema)]
struct ListMeta {
    counts: Counts,
}

#[derive(Serialize, ToSchema)]
struct Counts {
    mine: i64,
    unassigned: i64,
    all: i64,
}

impl From<TabCounts> for Counts {
    fn from(counts: TabCounts) -> Self {
        Self { mine: counts.mine, unassigned: counts.unassigned, all: counts.all_count }
    }
}

/// The conversation list: a page of conversations, latest activity first, with the tabs' counts.
///
/// Two queries whatever the page size — the page (with contacts and labels joined in) and the tab counts — and none while the account has not changed since the same caller asked the same question, or while that answer is being rendered (see `lists.rs`). Agents see the conversations of their inboxes only.
#[utoipa::path(get, path = "/api/conversations", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations; `meta.counts` are the mine / unassigned / all tabs under the same filters", body = ConversationList),
        (status = 400, description = "`invalid_cursor`: not a `next_cursor` this API gave", body = Problem),
        (status = 422, description = "`validation_failed`: an unknown `status` or `assignee`, or `limit` out of range", body = Problem),
    ),
)]
async fn list_conversations(
    State(desk): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    Query(query): Query<ListQuery>,
) -> Result<Response, InboxError> {
    let key = format!("{}:{}:{}", caller.user, caller.role.as_str(), raw.unwrap_or_default());
    let render = async {
        let page = render_conversations(&desk, &caller, query).await?;
        Ok::<_, InboxError>(Bytes::from(serde_json::to_vec(&page).map_err(|e| InboxError::Internal(e.into()))?))
    };
    Ok(json_bytes(desk.feed.lists.get_or_render(caller.account, key, render).await?))
}

fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

async fn render_conversations(desk: &Desk, caller: &Caller, query: ListQuery) -> Result<ConversationList, InboxError> {
    let status = match query.status.as_deref() {
        None => Some(ConversationStatus::Open),
        Some("all") => None,
        Some(s) => Some(ConversationStatus::parse(s).ok_or_else(|| {
            InboxError::Invalid(vec![FieldError::new(
                "status",
                "unsupported",
                "`status` is one of open, pending, resolved, snoozed, all.",
            )])
        })?),
    };
    let me = caller.user;
    let (assignee, unassigned) = match query.assignee.as_deref() {
        None | Some("all") => (None, false),
        Some("me") => (Some(me), false),
        Some("unassigned") => (None, true),
        Some(other) => match other.parse::<UserId>() {
            Ok(id) => (Some(id), false),
            Err(_) => {
                return Err(InboxError::Invalid(vec![FieldError::new(
                    "assignee",
                    "unsupported",
                    "`assignee` is me, unassigned, all or a user id.",
                )]));
            }
        },
    };
    let limit = page_limit(query.limit)?;
    let filter = ListFilter {
        account: caller.account,
        status,
        inbox: query.inbox_id,
        assignee,
        unassigned,
        label: query.label,
        member: (!caller.role.manages_members()).then_some(me),
        caller: me,
        before: before(query.cursor.as_deref())?,
        limit,
    };
    let rows = desk.store.conversations(&filter).await?;
    let counts = desk.store.tab_counts(&filter).await?;
    let next_cursor = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| cursor(r.last_message_at, r.id)))
        .flatten();
    Ok(ConversationList {
        data: rows.into_iter().map(ConversationView::from).collect(),
        next_cursor,
        meta: ListMeta { counts: counts.into() },
    })
}

/// One conversation.
#[utoipa::path(get, path = "/api/conversations/{id}", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
    ),
)]
async fn get_conversation(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Reply<ConversationView> {
    Ok(Json(ConversationView::from(desk.visible_conversation(&caller, id).await?)))
}

/// A conversation's messages: the newest page first, each page in chronological order.
///
/// `cursor` pages back in time.
#[utoipa::path(get, path = "/api/conversations/{id}/messages", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation"), PageQuery),
    responses(
        (status = 200, description = "A page of messages, oldest first", body = Page<MessageView>),
        (status = 400, description = "`invalid_cursor`: not a `next_cursor` this API gave", body = Problem),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn list_messages(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Query(query): Query<PageQuery>,
) -> Reply<Page<MessageView>> {
    let conversation = desk.visible_conversation(&caller, id).await?;
    let limit = page_limit(query.limit)?;
    let mut rows =
        desk.store.messages(caller.account, conversation.id, before(query.cursor.as_deref())?, limit).await?;
    let next_cursor = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| cursor(r.created_at, r.id)))
        .flatten();
    rows.reverse();
    Ok(Json(Page { data: rows.into_iter().map(MessageView::from).collect(), next_cursor }))
}

#[derive(Deserialize, ToSchema)]
struct CreateMessage {
    /// 1 to 10,000 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,9998}\S)?\s*$", example = "ご連絡ありがとうございます。")]
    content: String,
    /// A private note for agents, never sent to the contact.
    #[serde(default)]
    private: bool,
}

/// Replies to the contact, or adds a private note (`private: true`) only agents see.
///
/// A reply is delivered through the inbox's channel; its `delivery_status` follows (pending, sent, failed with `delivery_error`).
#[utoipa::path(post, path = "/api/conversations/{id}/messages", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = CreateMessage,
    responses(
        (status = 201, description = "The message as stored", body = MessageView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn create_message(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<CreateMessage>,
) -> Result<(StatusCode, Json<MessageView>), InboxError> {
    let mut errors = Vec::new();
    let content = text("content", &body.content, MAX_CONTENT_CHARS, &mut errors);
    check(errors)?;
    let view = desk.post_message(&caller, id, content, body.private).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, ToSchema)]
struct ChangeStatus {
    #[schema(value_type = ConversationStatus, example = "resolved")]
    status: String,
    /// Unix ms; required when snoozing, and in the future.
    snoozed_until: Option<i64>,
}

/// Opens, resolves, marks pending or snoozes a conversation (until `snoozed_until`).
#[utoipa::path(post, path = "/api/conversations/{id}/status", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = ChangeStatus,
    responses(
        (status = 200, description = "The conversation as stored", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn change_status(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<ChangeStatus>,
) -> Reply<ConversationView> {
    let mut errors = Vec::new();
    let status = ConversationStatus::parse(&body.status);
    if status.is_none() {
        errors.push(FieldError::new("status", "unsupported", "`status` is one of open, pending, resolved, snoozed."));
    }
    if status == Some(ConversationStatus::Snoozed) && body.snoozed_until.is_none_or(|until| until <= now_ms()) {
        errors.push(FieldError::new(
            "snoozed_until",
            "required",
            "Snoozing needs `snoozed_until`, a future instant in Unix milliseconds.",
        ));
    }
    let (Some(status), true) = (status, errors.is_empty()) else {
        return Err(InboxError::Invalid(errors));
    };
    Ok(Json(desk.change_status(&caller, id, status, body.snoozed_until).await?))
}

#[derive(Deserialize, ToSchema)]
struct Assign {
    /// `null` unassigns.
    assignee_id: Option<UserId>,
}

/// Assigns a conversation to a member of the account, or unassigns it (`null`).
#[utoipa::path(post, path = "/api/conversations/{id}/assignee", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = Assign,
    responses(
        (status = 200, description = "The conversation as stored", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: the assignee is not a member of the account (`not_a_member`)", body = Problem),
    ),
)]
async fn assign_conversation(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<Assign>,
) -> Reply<ConversationView> {
    Ok(Json(desk.assign(&caller, id, body.assignee_id).await?))
}

#[derive(Deserialize, ToSchema)]
struct ChangePriority {
    #[schema(value_type = Priority, example = "high")]
    priority: String,
}

/// Sets a conversation's priority.
#[utoipa::path(post, path = "/api/conversations/{id}/priority", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = ChangePriority,
    responses(
        (status = 200, description = "The conversation as stored", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn change_priority(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<ChangePriority>,
) -> Reply<ConversationView> {
    let priority = Priority::parse(&body.priority).ok_or_else(|| {
        InboxError::Invalid(vec![FieldError::new(
            "priority",
            "unsupported",
            "`priority` is one of none, low, medium, high, urgent.",
        )])
    })?;
    Ok(Json(desk.set_priority(&caller, id, priority).await?))
}

#[derive(Deserialize, ToSchema)]
struct SetLabels {
    labels: Vec<String>,
}

/// Sets a conversation's labels, by name; each must exist in the account.
#[utoipa::path(put, path = "/api/conversations/{id}/labels", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    request_body = SetLabels,
    responses(
        (status = 200, description = "The conversation as stored", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
        (status = 422, description = "`validation_failed`: a label that does not exist (`unknown_label`), or too many (`too_many`)", body = Problem),
    ),
)]
async fn set_conversation_labels(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<SetLabels>,
) -> Reply<ConversationView> {
    Ok(Json(desk.set_labels(&caller, id, body.labels).await?))
}

/// Marks a conversation read for the caller: its `unread_count` becomes 0.
#[utoipa::path(post, path = "/api/conversations/{id}/read", security(("bearer" = [])),
    params(("id" = ConversationId, Path, description = "The conversation")),
    responses(
        (status = 200, description = "The conversation as stored", body = ConversationView),
        (status = 404, description = "`conversation_not_found`: no such conversation in your account", body = Problem),
    ),
)]
async fn mark_conversation_read(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Reply<ConversationView> {
    Ok(Json(desk.mark_read(&caller, id).await?))
}

// Labels.

#[derive(Deserialize, ToSchema)]
struct LabelBody {
    /// 1 to 50 characters after trimming; unique in the account.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,48}\S)?\s*$", example = "返品")]
    name: String,
    /// `#rrggbb`.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#336699")]
    colour: String,
    /// 1 to 500 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,498}\S)?\s*$")]
    description: Option<String>,
}

fn parse_label(body: LabelBody, id: LabelId, created_at: i64) -> Result<LabelRow, InboxError> {
    let mut errors = Vec::new();
    let name = text("name", &body.name, 50, &mut errors);
    let colour_ok = body.colour.len() == 7
        && body.colour.starts_with('#')
        && body.colour[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !colour_ok {
        errors.push(FieldError::new("colour", "invalid_format", "`colour` is `#rrggbb`."));
    }
    let description = body.description.map(|d| text("description", &d, 500, &mut errors));
    check(errors)?;
    Ok(LabelRow { id, name, colour: body.colour.to_lowercase(), description, created_at })
}

/// The account's labels.
#[utoipa::path(get, path = "/api/labels", security(("bearer" = [])),
    responses(
        (status = 200, description = "The labels, by name", body = [LabelView]),
    ),
)]
async fn list_labels(State(desk): State<AppState>, caller: Caller) -> Reply<Vec<LabelView>> {
    Ok(Json(desk.store.labels(caller.account).await?.into_iter().map(LabelView::from).collect()))
}

/// Creates a label. Owners and admins.
#[utoipa::path(post, path = "/api/labels", security(("bearer" = [])),
    request_body = LabelBody,
    responses(
        (status = 201, description = "The label as stored", body = LabelView),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 409, description = "`label_exists`: a label of this name exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn create_label(
    State(desk): State<AppState>,
    caller: Caller,
    Json(body): Json<LabelBody>,
) -> Result<(StatusCode, Json<LabelView>), InboxError> {
    require_manager(&caller)?;
    let row = parse_label(body, LabelId::new(), now_ms())?;
    desk.store.insert_label(caller.account, &row).await.map_err(name_taken("label_exists"))?;
    Ok((StatusCode::CREATED, Json(LabelView::from(row))))
}

/// Renames or recolours a label. Owners and admins.
#[utoipa::path(put, path = "/api/labels/{id}", security(("bearer" = [])),
    params(("id" = LabelId, Path, description = "The label")),
    request_body = LabelBody,
    responses(
        (status = 200, description = "The label as stored", body = LabelView),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`label_not_found`: no such label in your account", body = Problem),
        (status = 409, description = "`label_exists`: a label of this name exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn update_label(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<LabelId>,
    Json(body): Json<LabelBody>,
) -> Reply<LabelView> {
    require_manager(&caller)?;
    let existing = desk.store.label(caller.account, id).await?.ok_or(InboxError::NotFound("label"))?;
    let row = parse_label(body, existing.id, existing.created_at)?;
    desk.store.update_label(caller.account, &row).await.map_err(name_taken("label_exists"))?;
    // Lists show label names.
    desk.feed.lists.invalidate(caller.account);
    Ok(Json(LabelView::from(row)))
}

/// Deletes a label, and takes it off every conversation. Owners and admins.
#[utoipa::path(delete, path = "/api/labels/{id}", security(("bearer" = [])),
    params(("id" = LabelId, Path, description = "The label")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`label_not_found`: no such label in your account", body = Problem),
    ),
)]
async fn delete_label(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<LabelId>,
) -> Result<StatusCode, InboxError> {
    require_manager(&caller)?;
    if !desk.store.delete_label(caller.account, id).await? {
        return Err(InboxError::NotFound("label"));
    }
    desk.feed.lists.invalidate(caller.account);
    Ok(StatusCode::NO_CONTENT)
}

fn name_taken(code: &'static str) -> impl Fn(kernel::store::StoreError) -> InboxError {
    move |error| match error {
        kernel::store::StoreError::UniqueViolation { .. } => {
            InboxError::Conflict(code, "One with this name already exists in your account.")
        }
        other => InboxError::Store(other),
    }
}

// Canned responses.

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CannedQuery {
    /// Short-code prefix, as typed after `/` in the reply box.
    q: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct CannedBody {
    /// 1 to 50 letters, digits, `_` or `-` (surrounding whitespace is trimmed); unique in the account.
    #[schema(pattern = r"^\s*[A-Za-z0-9_-]{1,50}\s*$", example = "thanks")]
    short_code: String,
    /// 1 to 10,000 characters after trimming.
    #[schema(pattern = r"^\s*\S(?:[\s\S]{0,9998}\S)?\s*$", example = "お問い合わせありがとうございます。")]
    content: String,
}

fn parse_canned(body: CannedBody, id: CannedResponseId, created_at: i64) -> Result<CannedRow, InboxError> {
    let mut errors = Vec::new();
    let short_code = body.short_code.trim().to_owned();
    if short_code.is_empty()
        || short_code.len() > 50
        || !short_code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        errors.push(FieldError::new(
            "short_code",
            "invalid_format",
            "`short_code` is 1–50 letters, digits, `_` or `-`.",
        ));
    }
    let content = text("content", &body.content, MAX_CONTENT_CHARS, &mut errors);
    check(errors)?;
    Ok(CannedRow { id, short_code, content, created_at, updated_at: now_ms() })
}

/// The account's canned responses, by short code; `q` filters by short-code prefix.
#[utoipa::path(get, path = "/api/canned-responses", security(("bearer" = [])),
    params(CannedQuery),
    responses(
        (status = 200, description = "The canned responses", body = [CannedView]),
        (status = 403, description = "`plan_feature_unavailable`: the plan has no canned responses", body = Problem),
    ),
)]
async fn list_canned_responses(
    State(desk): State<AppState>,
    caller: Caller,
    Query(query): Query<CannedQuery>,
) -> Reply<Vec<CannedView>> {
    desk.require_feature(&caller, Feature::CannedResponses).await?;
    let rows = desk.store.canned_responses(caller.account, query.q.as_deref()).await?;
    Ok(Json(rows.into_iter().map(CannedView::from).collect()))
}

/// Creates a canned response. Owners and admins, on plans with canned responses.
#[utoipa::path(post, path = "/api/canned-responses", security(("bearer" = [])),
    request_body = CannedBody,
    responses(
        (status = 201, description = "The canned response as stored", body = CannedView),
        (status = 403, description = "`forbidden`: owners and admins only; `plan_feature_unavailable`: the plan has no canned responses", body = Problem),
        (status = 409, description = "`short_code_exists`: one with this short code exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn create_canned_response(
    State(desk): State<AppState>,
    caller: Caller,
    Json(body): Json<CannedBody>,
) -> Result<(StatusCode, Json<CannedView>), InboxError> {
    require_manager(&caller)?;
    desk.require_feature(&caller, Feature::CannedResponses).await?;
    let row = parse_canned(body, CannedResponseId::new(), now_ms())?;
    desk.store.insert_canned_response(caller.account, &row).await.map_err(name_taken("short_code_exists"))?;
    Ok((StatusCode::CREATED, Json(CannedView::from(row))))
}

/// Changes a canned response. Owners and admins, on plans with canned responses.
#[utoipa::path(put, path = "/api/canned-responses/{id}", security(("bearer" = [])),
    params(("id" = CannedResponseId, Path, description = "The canned response")),
    request_body = CannedBody,
    responses(
        (status = 200, description = "The canned response as stored", body = CannedView),
        (status = 403, description = "`forbidden`: owners and admins only; `plan_feature_unavailable`: the plan has no canned responses", body = Problem),
        (status = 404, description = "`canned_response_not_found`", body = Problem),
        (status = 409, description = "`short_code_exists`: one with this short code exists", body = Problem),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn update_canned_response(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<CannedResponseId>,
    Json(body): Json<CannedBody>,
) -> Reply<CannedView> {
    require_manager(&caller)?;
    desk.require_feature(&caller, Feature::CannedResponses).await?;
    let existing =
        desk.store.canned_response(caller.account, id).await?.ok_or(InboxError::NotFound("canned_response"))?;
    let row = parse_canned(body, existing.id, existing.created_at)?;
    desk.store.update_canned_response(caller.account, &row).await.map_err(name_taken("short_code_exists"))?;
    Ok(Json(CannedView::from(row)))
}

/// Deletes a canned response. Owners and admins.
#[utoipa::path(delete, path = "/api/canned-responses/{id}", security(("bearer" = [])),
    params(("id" = CannedResponseId, Path, description = "The canned response")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: owners and admins only", body = Problem),
        (status = 404, description = "`canned_response_not_found`", body = Problem),
    ),
)]
async fn delete_canned_response(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<CannedResponseId>,
) -> Result<StatusCode, InboxError> {
    require_manager(&caller)?;
    if !desk.store.delete_canned_response(caller.account, id).await? {
        return Err(InboxError::NotFound("canned_response"));
    }
    Ok(StatusCode::NO_CONTENT)
}

// Search.

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// At most 200 characters.
    #[param(max_length = 200)]
    q: String,
    /// How many of each kind: 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct SearchResults {
    contacts: Vec<ContactView>,
    conversations: Vec<ConversationView>,
    messages: Vec<MessageView>,
}

/// Searches contacts, conversations and messages for every term of `q`, in Japanese or any spaced language.
///
/// Japanese text is matched by its character bigrams, so 返品 finds 返品したいです. Three queries. Agents find what they can see only.
#[utoipa::path(get, path = "/api/search", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "What matched, each list best first", body = SearchResults),
        (status = 422, description = "`validation_failed`: see `errors`", body = Problem),
    ),
)]
async fn search_everything(
    State(desk): State<AppState>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Reply<SearchResults> {
    let limit = page_limit(query.limit.or(Some(20)))?;
    if query.q.chars().count() > 200 {
        return Err(InboxError::Invalid(vec![FieldError::new("q", "too_long", "`q` is limited to 200 characters.")]));
    }
    let Some(found) = search::parse(caller.account, &query.q) else {
        return Ok(Json(SearchResults { contacts: Vec::new(), conversations: Vec::new(), messages: Vec::new() }));
    };
    let member = (!caller.role.manages_members()).then_some(caller.user);
    let contacts = desk.store.search_contacts(&found, limit).await?;
    let conversations = desk.store.search_conversations(&found, member, limit).await?;
    let messages = desk.store.search_messages(&found, member, limit).await?;
    Ok(Json(SearchResults {
        contacts: contacts.into_iter().map(ContactView::from).collect(),
        conversations: conversations.into_iter().map(ConversationView::from).collect(),
        messages: messages.into_iter().map(MessageView::from).collect(),
    }))
}
