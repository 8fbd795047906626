//! Contacts: identified by a channel, updated by agents, and what a delivery report changes.

use super::*;

/// What a contact is found by.
pub fn contact_text(row: &ContactRow) -> String {
    search::contact_text(row.name.as_deref(), row.email.as_deref(), row.phone.as_deref())
}

fn contact_document<'a>(account: AccountId, text: &'a str, row: &ContactRow) -> Document<'a> {
    Document { account, body: text, kind: DocKind::Contact, id: row.id.0, conversation: None }
}

/// Replaces the contact's search document with one of what it says now.
async fn reindex_contact(tx: &mut Tx<'_>, account: AccountId, row: &ContactRow) -> Result<(), InboxError> {
    Store::unindex(tx, account, DocKind::Contact, row.id.0).await?;
    Store::index(tx, &contact_document(account, &contact_text(row), row)).await?;
    Ok(())
}

/// Records a contact identified on a channel before writing.
pub async fn contact_identified(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    inbox: InboxId,
    contact: &ChannelContact,
) -> Result<(), InboxError> {
    if Store::inbox_in(tx, account, inbox).await?.is_none() {
        return Ok(());
    }
    let mut changes = Changes::new(account);
    let now = now_ms();
    identify(tx, &mut changes, account, inbox, contact, now).await?;
    changes.record(tx, feed, now).await
}

/// Shows what became of delivering a reply.
pub async fn delivery_updated(
    tx: &mut Tx<'_>,
    feed: &Feed,
    account: AccountId,
    message: MessageId,
    status: DeliveryStatus,
    reason: Option<&str>,
) -> Result<(), InboxError> {
    let Some(row) = Store::set_delivery(tx, account, message, status, reason).await? else {
        return Ok(());
    };
    let Some(conversation) = Store::conversation_in(tx, account, row.conversation_id).await? else {
        return Ok(());
    };
    let mut changes = Changes::in_inbox(account, conversation.inbox_id);
    changes.push(FeedKind::MessageUpdated, json!({ "message": MessageView::from(row) }));
    changes.record(tx, feed, now_ms()).await
}

/// An agent corrects a contact's details; the search index and the feed follow.
pub async fn update_contact(
    desk: &Desk,
    caller: &Caller,
    id: ContactId,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
) -> Result<ContactRow, InboxError> {
    let account = caller.account;
    let now = now_ms();
    let mut tx = desk.store.namespace().begin().await?;
    let mut row = Store::contact_in(&mut tx, account, id).await?.ok_or(InboxError::NotFound("contact"))?;
    row.name = name.or(row.name);
    row.email = email.or(row.email);
    row.phone = phone.or(row.phone);
    row.updated_at = now;
    Store::update_contact(&mut tx, account, &row).await?;
    reindex_contact(&mut tx, account, &row).await?;
    let mut changes = Changes::new(account);
    changes.push_to_all(FeedKind::ContactUpdated, json!({ "contact": crate::views::ContactView::from(row.clone()) }));
    changes.record(&mut tx, &desk.feed, now).await?;
    tx.commit().await?;
    Ok(row)
}

/// The contact a channel identity belongs to, created on first sight; what the channel says of them now
/// fills in what the contact lacks (agents' edits are not overwritten).
pub(super) async fn identify(
    tx: &mut Tx<'_>,
    changes: &mut Changes,
    account: AccountId,
    inbox: InboxId,
    contact: &ChannelContact,
    now: i64,
) -> Result<ContactRow, InboxError> {
    match Store::contact_by_identity(tx, inbox, &contact.source_id).await? {
        Some(mut row) => {
            let before = (row.name.clone(), row.email.clone(), row.phone.clone());
            row.name = row.name.or_else(|| contact.name.clone());
            row.email = row.email.or_else(|| contact.email.clone());
            row.phone = row.phone.or_else(|| contact.phone.clone());
            if before != (row.name.clone(), row.email.clone(), row.phone.clone()) {
                row.updated_at = now;
                Store::update_contact(tx, account, &row).await?;
                reindex_contact(tx, account, &row).await?;
                changes.push_to_all(
                    FeedKind::ContactUpdated,
                    json!({ "contact": crate::views::ContactView::from(row.clone()) }),
                );
            }
            Ok(row)
        }
        None => {
            let row = ContactRow {
                id: ContactId::new(),
                name: contact.name.clone(),
                email: contact.email.clone(),
                phone: contact.phone.clone(),
                created_at: now,
                updated_at: now,
            };
            Store::insert_contact(tx, account, &row, inbox, &contact.source_id).await?;
            Store::index(tx, &contact_document(account, &contact_text(&row), &row)).await?;
            changes.push_to_all(
                FeedKind::ContactCreated,
                json!({ "contact": crate::views::ContactView::from(row.clone()) }),
            );
            Ok(row)
        }
    }
}
