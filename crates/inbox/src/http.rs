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
use kernel::http::{FieldError, Json, Path, Query};
use kernel::routes::Routes;
use serde::{Deserialize, Serialize};

use crate::InboxError;
use crate::desk::{self, Desk, require_manager};
use crate::domain::{CannedResponseId, LabelId, Priority};
use crate::realtime::connect_realtime;
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
        .get("/api/inboxes", list_inboxes)
        .post("/api/inboxes", create_inbox)
        .get("/api/inboxes/{id}", get_inbox)
        .put("/api/inboxes/{id}", update_inbox)
        .delete("/api/inboxes/{id}", delete_inbox)
        .get("/api/inboxes/{id}/members", list_inbox_members)
        .put("/api/inboxes/{id}/members", set_inbox_members)
        .get("/api/contacts", list_contacts)
        .get("/api/contacts/{id}", get_contact)
        .put("/api/contacts/{id}", update_contact)
        .get("/api/contacts/{id}/conversations", list_contact_conversations)
        .get("/api/conversations", list_conversations)
        .get("/api/conversations/{id}", get_conversation)
        .get("/api/conversations/{id}/messages", list_messages)
        .post("/api/conversations/{id}/messages", create_message)
        .post("/api/conversations/{id}/status", change_status)
        .post("/api/conversations/{id}/assignee", assign_conversation)
        .post("/api/conversations/{id}/priority", change_priority)
        .put("/api/conversations/{id}/labels", set_conversation_labels)
        .post("/api/conversations/{id}/read", mark_conversation_read)
        .get("/api/labels", list_labels)
        .post("/api/labels", create_label)
        .put("/api/labels/{id}", update_label)
        .delete("/api/labels/{id}", delete_label)
        .get("/api/canned-responses", list_canned_responses)
        .post("/api/canned-responses", create_canned_response)
        .put("/api/canned-responses/{id}", update_canned_response)
        .delete("/api/canned-responses/{id}", delete_canned_response)
        .get("/api/search", search_everything)
        .get("/api/realtime", connect_realtime)
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

#[derive(Deserialize)]
struct CreateInbox {
    name: String,
    channel: String,
    #[serde(default)]
    callback_url: Option<String>,
}

#[derive(Deserialize)]
struct UpdateInbox {
    name: String,
    #[serde(default)]
    callback_url: Option<String>,
}

async fn list_inboxes(State(desk): State<AppState>, caller: Caller) -> Reply<Vec<InboxView>> {
    let rows = desk.store.inboxes(caller.account).await?;
    Ok(Json(rows.into_iter().map(InboxView::from).collect()))
}

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

async fn get_inbox(State(desk): State<AppState>, caller: Caller, Path(id): Path<InboxId>) -> Reply<InboxView> {
    let row = desk.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
    let mut view = InboxView::from(row);
    if caller.role.manages_members() {
        view.secret = desk.input.channel(caller.account, id).await?.map(|c| c.secret);
    }
    Ok(Json(view))
}

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

async fn delete_inbox(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
) -> Result<StatusCode, InboxError> {
    desk.delete_inbox(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize)]
struct InboxMembers {
    user_ids: Vec<UserId>,
}

async fn list_inbox_members(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
) -> Reply<InboxMembers> {
    desk.store.inbox(caller.account, id).await?.ok_or(InboxError::NotFound("inbox"))?;
    Ok(Json(InboxMembers { user_ids: desk.store.inbox_members(caller.account, id).await? }))
}

async fn set_inbox_members(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<InboxId>,
    Json(body): Json<InboxMembers>,
) -> Reply<InboxMembers> {
    Ok(Json(InboxMembers { user_ids: desk.set_inbox_members(&caller, id, body.user_ids).await? }))
}

// Contacts.

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct ContactDetail {
    #[serde(flatten)]
    contact: ContactView,
    identities: Vec<Identity>,
}

#[derive(Serialize)]
struct Identity {
    inbox_id: InboxId,
    source_id: String,
}

#[derive(Deserialize)]
struct UpdateContact {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

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
    Ok(Json(Page { data: rows.into_iter().map(ContactView::from).collect(), next_cursor, meta: None }))
}

async fn get_contact(State(desk): State<AppState>, caller: Caller, Path(id): Path<ContactId>) -> Reply<ContactDetail> {
    let row = desk.store.contact(caller.account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    let identities = desk.store.contact_identities(caller.account, id).await?;
    Ok(Json(ContactDetail {
        contact: ContactView::from(row),
        identities: identities.into_iter().map(|(inbox_id, source_id)| Identity { inbox_id, source_id }).collect(),
    }))
}

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

#[derive(Deserialize)]
struct ListQuery {
    /// open (default), pending, resolved, snoozed or all.
    status: Option<String>,
    inbox_id: Option<InboxId>,
    /// `me`, `unassigned`, `all` (default) or a user id.
    assignee: Option<String>,
    label: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct ListMeta {
    counts: Counts,
}

#[derive(Serialize)]
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

/// `GET /api/conversations`: two queries whatever the page size — the page (with contacts and labels
/// joined in) and the tab counts — and none while the account has not changed since the same caller asked
/// the same question, or while that answer is being rendered (see `lists.rs`).
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

async fn render_conversations(
    desk: &Desk,
    caller: &Caller,
    query: ListQuery,
) -> Result<Page<ConversationView, ListMeta>, InboxError> {
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
    Ok(Page {
        data: rows.into_iter().map(ConversationView::from).collect(),
        next_cursor,
        meta: Some(ListMeta { counts: counts.into() }),
    })
}

async fn get_conversation(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Reply<ConversationView> {
    Ok(Json(ConversationView::from(desk.visible_conversation(&caller, id).await?)))
}

/// `GET /api/conversations/{id}/messages`: newest page first (`cursor` pages back in time); each page is in
/// chronological order.
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
    Ok(Json(Page { data: rows.into_iter().map(MessageView::from).collect(), next_cursor, meta: None }))
}

#[derive(Deserialize)]
struct CreateMessage {
    content: String,
    /// A private note for agents, never sent to the contact.
    #[serde(default)]
    private: bool,
}

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

#[derive(Deserialize)]
struct ChangeStatus {
    status: String,
    /// Unix ms; required when snoozing, and in the future.
    snoozed_until: Option<i64>,
}

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

#[derive(Deserialize)]
struct Assign {
    /// `null` unassigns.
    assignee_id: Option<UserId>,
}

async fn assign_conversation(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<Assign>,
) -> Reply<ConversationView> {
    Ok(Json(desk.assign(&caller, id, body.assignee_id).await?))
}

#[derive(Deserialize)]
struct ChangePriority {
    priority: String,
}

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

#[derive(Deserialize)]
struct SetLabels {
    labels: Vec<String>,
}

async fn set_conversation_labels(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<SetLabels>,
) -> Reply<ConversationView> {
    Ok(Json(desk.set_labels(&caller, id, body.labels).await?))
}

async fn mark_conversation_read(
    State(desk): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Reply<ConversationView> {
    Ok(Json(desk.mark_read(&caller, id).await?))
}

// Labels.

#[derive(Deserialize)]
struct LabelBody {
    name: String,
    colour: String,
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

async fn list_labels(State(desk): State<AppState>, caller: Caller) -> Reply<Vec<LabelView>> {
    Ok(Json(desk.store.labels(caller.account).await?.into_iter().map(LabelView::from).collect()))
}

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

#[derive(Deserialize)]
struct CannedQuery {
    /// Short-code prefix, as typed after `/` in the reply box.
    q: Option<String>,
}

#[derive(Deserialize)]
struct CannedBody {
    short_code: String,
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

async fn list_canned_responses(
    State(desk): State<AppState>,
    caller: Caller,
    Query(query): Query<CannedQuery>,
) -> Reply<Vec<CannedView>> {
    desk.require_feature(&caller, Feature::CannedResponses).await?;
    let rows = desk.store.canned_responses(caller.account, query.q.as_deref()).await?;
    Ok(Json(rows.into_iter().map(CannedView::from).collect()))
}

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

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct SearchResults {
    contacts: Vec<ContactView>,
    conversations: Vec<ConversationView>,
    messages: Vec<MessageView>,
}

/// `GET /api/search?q=`: contacts, conversations and messages matching every term of `q`, in Japanese or
/// any spaced language. Three queries.
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
