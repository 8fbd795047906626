//! Contacts: identified by a channel, updated by agents, and what a delivery report changes.

use super::*;

/// What a contact is found by.
pub fn contact_text(row: &ContactRow) -> String {
    let fields = [row.name.as_deref(), row.email.as_deref(), row.phone.as_deref()];
    search::index_text(&fields.into_iter().flatten().collect::<Vec<_>>().join(" "))
}

/// Records a contact identified on a channel before writing.
pub async fn contact_identified(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    inbox: InboxId,
    contact: &ChannelContact,
) -> Result<(), InboxError> {
    let account_text = account.to_string();
    if Store::inbox_in(tx, &account_text, &inbox.to_string()).await?.is_none() {
        return Ok(());
    }
    let mut changes = Changes::new(account);
    let now = now_ms();
    identify(tx, &mut changes, &account_text, &inbox.to_string(), contact, now).await?;
    changes.record(tx, feed, now).await
}

/// Shows what became of delivering a reply.
pub async fn delivery_updated(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    message: MessageId,
    status: &str,
    reason: Option<&str>,
) -> Result<(), InboxError> {
    let account_text = account.to_string();
    let Some(row) = Store::set_delivery(tx, &account_text, &message.to_string(), status, reason).await? else {
        return Ok(());
    };
    let Some(conversation) = Store::conversation_in(tx, &account_text, &row.conversation_id).await? else {
        return Ok(());
    };
    let mut changes = Changes::in_inbox(account, &conversation.inbox_id);
    changes.push("message.updated", json!({ "message": MessageView::from(row) }));
    changes.record(tx, feed, now_ms()).await
}

/// An agent corrects a contact's details; the search index and the feed follow.
pub async fn update_contact(
    desk: &Desk,
    caller: &Caller,
    id: &str,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
) -> Result<ContactRow, InboxError> {
    let account = caller.account.to_string();
    let now = now_ms();
    let mut tx = desk.store.namespace().begin().await?;
    let mut row = Store::contact_in(&mut tx, &account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    row.name = name.or(row.name);
    row.email = email.or(row.email);
    row.phone = phone.or(row.phone);
    row.updated_at = now;
    Store::update_contact(&mut tx, &account, &row).await?;
    let scope = search::scope(&account);
    Store::unindex(&mut tx, &scope, "contact", &row.id).await?;
    Store::index(&mut tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
    let mut changes = Changes::new(caller.account);
    changes.push_to_all("contact.updated", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
    changes.record(&mut tx, &desk.feed, now).await?;
    tx.commit().await?;
    Ok(row)
}

/// The contact a channel identity belongs to, created on first sight; what the channel says of them now
/// fills in what the contact lacks (agents' edits are not overwritten).
pub(super) async fn identify(
    tx: &mut Tx<'_>,
    changes: &mut Changes,
    account: &str,
    inbox: &str,
    contact: &ChannelContact,
    now: i64,
) -> Result<ContactRow, InboxError> {
    let scope = search::scope(account);
    match Store::contact_by_identity(tx, inbox, &contact.source_id).await? {
        Some(mut row) => {
            let before = (row.name.clone(), row.email.clone(), row.phone.clone());
            row.name = row.name.or_else(|| contact.name.clone());
            row.email = row.email.or_else(|| contact.email.clone());
            row.phone = row.phone.or_else(|| contact.phone.clone());
            if before != (row.name.clone(), row.email.clone(), row.phone.clone()) {
                row.updated_at = now;
                Store::update_contact(tx, account, &row).await?;
                Store::unindex(tx, &scope, "contact", &row.id).await?;
                Store::index(tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
                changes
                    .push_to_all("contact.updated", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
            }
            Ok(row)
        }
        None => {
            let row = ContactRow {
                id: contracts::inbox::ContactId::new().to_string(),
                name: contact.name.clone(),
                email: contact.email.clone(),
                phone: contact.phone.clone(),
                created_at: now,
                updated_at: now,
            };
            Store::insert_contact(tx, account, &row, inbox, &contact.source_id).await?;
            Store::index(tx, &scope, &contact_text(&row), "contact", &row.id, None).await?;
            changes.push_to_all("contact.created", json!({ "contact": crate::views::ContactView::from(row.clone()) }));
            Ok(row)
        }
    }
}
