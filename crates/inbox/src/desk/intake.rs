//! Message intake: customers' messages received on a channel, one at a time or as a batch, become
//! contacts, conversations and messages.

use super::contacts::identify;
use super::*;

/// Applies a customer's message received on a channel: finds or creates the contact by its channel
/// identity, finds, reopens or starts its conversation, and stores the message under the id input chose
/// (a redelivery finds it there and changes nothing).
pub async fn receive_message(tx: &mut Tx<'_>, feed: &Feed, event: &MessageReceived) -> Result<(), InboxError> {
    let MessageReceived { account, inbox, message: message_id, ref contact, ref content, received_at } = *event;
    let Some(inbox_row) = Store::inbox_in(tx, account, inbox).await? else {
        // The inbox was deleted after input accepted the message; there is nowhere to put it.
        tracing::warn!(account.id = %account, inbox.id = %inbox, "message for an inbox that no longer exists");
        return Ok(());
    };
    // A redelivered message changes nothing: not even the status of a conversation resolved since.
    if Store::has_message(tx, message_id).await? {
        return Ok(());
    }
    let mut changes = Changes::in_inbox(account, inbox);
    let contact_row = identify(tx, &mut changes, account, inbox, contact, received_at).await?;
    let conversation = match Store::conversation_of_contact(tx, inbox, contact_row.id).await? {
        Some((id, status)) => {
            if status != ConversationStatus::Open {
                // A customer writing again reopens the conversation (there is one per contact).
                let current =
                    Store::conversation_in(tx, account, id).await?.ok_or(InboxError::NotFound("conversation"))?;
                set_status(tx, feed, account, &current, ConversationStatus::Open, None, None).await?;
            }
            id
        }
        None => {
            let id = ConversationId::new();
            let display_id = Store::insert_conversation(tx, account, id, inbox, contact_row.id, received_at).await?;
            tx.publish(&ConversationCreated { account, inbox, conversation: id, display_id, contact: contact_row.id })
                .await?;
            let number = search::index_text(&format!("#{display_id}"));
            let document =
                Document { account, body: &number, kind: DocKind::Conversation, id: id.0, conversation: Some(id) };
            Store::index(tx, &document).await?;
            let view = updated_view(tx, account, id).await?;
            changes.push(FeedKind::ConversationCreated, json!({ "conversation": view }));
            id
        }
    };
    let message = MessageRow {
        id: message_id,
        conversation_id: conversation,
        kind: MessageKind::Incoming,
        content: content.to_owned(),
        sender_id: None,
        attributes: None,
        delivery_status: None,
        delivery_error: None,
        created_at: received_at,
    };
    if !Store::insert_message(tx, account, &message).await? {
        return Ok(());
    }
    Store::touch_conversation(tx, account, conversation, &preview(content), MessageKind::Incoming, 1, received_at)
        .await?;
    let text = search::index_text(content);
    let document =
        Document { account, body: &text, kind: DocKind::Message, id: message.id.0, conversation: Some(conversation) };
    Store::index(tx, &document).await?;
    let view = updated_view(tx, account, conversation).await?;
    tx.publish(&MessageCreated {
        account,
        inbox,
        channel: inbox_row.channel,
        conversation,
        message: message_id,
        kind: MessageKind::Incoming,
        content: content.to_owned(),
        sender: None,
        contact_source_id: Some(contact.source_id.clone()),
        created_at: received_at,
    })
    .await?;
    changes.push(FeedKind::MessageCreated, json!({ "message": MessageView::from(message), "conversation": view }));
    changes.record(tx, feed, now_ms()).await?;
    Ok(())
}

/// Applies a run of customers' messages (a consumer batch), in order. Messages to a known contact's
/// open conversation that tell nothing new about the contact are stored together, with a constant number of
/// statements for the whole run; the others (a new contact or conversation, a conversation to reopen,
/// details to fill in) take [`receive_message`] in their place in the order.
pub async fn receive_messages(tx: &mut Tx<'_>, feed: &Feed, events: &[MessageReceived]) -> Result<(), InboxError> {
    // A message delivered twice in one batch is taken once, as it would be one at a time.
    let mut seen = HashSet::new();
    let events: Vec<&MessageReceived> = events.iter().filter(|event| seen.insert(event.message)).collect();
    let mut identities: Vec<Identity<'_>> = events.iter().map(|event| identity(event)).collect();
    identities.sort_unstable();
    identities.dedup();
    // Keyed by account too: an event whose account does not own the inbox finds nothing here and is
    // dropped by `receive_message`, as it would be alone.
    let known_conversations = Store::known_conversations(tx, &identities).await?;
    let known: HashMap<Identity<'_>, &KnownConversation> = known_conversations
        .iter()
        .map(|k| (Identity { account: k.account_id, inbox: k.inbox_id, source_id: &k.source_id }, k))
        .collect();

    let mut run: Vec<(&MessageReceived, &KnownConversation)> = Vec::new();
    for event in &events {
        match known.get(&identity(event)) {
            Some(found) if found.status == ConversationStatus::Open && !tells_more(found, &event.contact) => {
                run.push((event, found));
            }
            _ => {
                store_incoming(tx, feed, &std::mem::take(&mut run)).await?;
                receive_message(tx, feed, event).await?;
            }
        }
    }
    store_incoming(tx, feed, &run).await
}

/// Who wrote `event`.
fn identity(event: &MessageReceived) -> Identity<'_> {
    Identity { account: event.account, inbox: event.inbox, source_id: &event.contact.source_id }
}

/// Whether a channel's details of a contact fill in something the contact lacks.
fn tells_more(known: &KnownConversation, contact: &ChannelContact) -> bool {
    (known.name.is_none() && contact.name.is_some())
        || (known.email.is_none() && contact.email.is_some())
        || (known.phone.is_none() && contact.phone.is_some())
}

/// Stores a run of messages to known, open conversations: what [`receive_message`] does for each, with
/// one statement per step for all of them.
async fn store_incoming(
    tx: &mut Tx<'_>,
    feed: &Feed,
    run: &[(&MessageReceived, &KnownConversation)],
) -> Result<(), InboxError> {
    if run.is_empty() {
        return Ok(());
    }
    let previews: Vec<String> = run.iter().map(|(event, _)| preview(&event.content)).collect();
    let messages: Vec<NewIncoming<'_>> = run
        .iter()
        .map(|(event, known)| NewIncoming {
            id: event.message,
            account: event.account,
            conversation: known.conversation_id,
            content: &event.content,
            created_at: event.received_at,
        })
        .collect();
    let inserted: HashSet<MessageId> = Store::insert_incoming(tx, &messages).await?.into_iter().collect();
    // A redelivered message is already there: it changes nothing.
    let stored: Vec<usize> = (0..run.len()).filter(|&i| inserted.contains(&run[i].0.message)).collect();
    if stored.is_empty() {
        return Ok(());
    }

    // Each conversation ends the run with its last message, and one unread more per message.
    let mut unread: HashMap<ConversationId, i64> = HashMap::new();
    let mut last: HashMap<ConversationId, usize> = HashMap::new();
    for &i in &stored {
        let conversation = run[i].1.conversation_id;
        *unread.entry(conversation).or_default() += 1;
        last.insert(conversation, i);
    }
    let touches: Vec<Touch<'_>> = last
        .iter()
        .map(|(&conversation, &i)| Touch {
            account: run[i].0.account,
            conversation,
            at: run[i].0.received_at,
            preview: &previews[i],
            unread: unread[&conversation],
        })
        .collect();
    Store::touch_conversations(tx, &touches).await?;

    let texts: Vec<String> = stored.iter().map(|&i| search::index_text(&run[i].0.content)).collect();
    let documents: Vec<Document<'_>> = stored
        .iter()
        .zip(&texts)
        .map(|(&i, text)| Document {
            account: run[i].0.account,
            body: text,
            kind: DocKind::Message,
            id: run[i].0.message.0,
            conversation: Some(run[i].1.conversation_id),
        })
        .collect();
    Store::index_all(tx, &documents).await?;

    let conversation_ids: Vec<ConversationId> = last.keys().copied().collect();
    let mut after_run: HashMap<ConversationId, ConversationRow> =
        Store::conversations_in(tx, &conversation_ids).await?.into_iter().map(|row| (row.id, row)).collect();

    let mut published = Vec::with_capacity(stored.len());
    let mut changes: Vec<Changes> = Vec::new();
    // Walking the run backwards, each message's view is the conversation's after the run, less the unread
    // messages that come after it, with itself as the last message: what it would have been had each been
    // stored on its own.
    let mut views = Vec::with_capacity(stored.len());
    for &i in stored.iter().rev() {
        let (event, known) = run[i];
        let row = after_run.get_mut(&known.conversation_id).ok_or(InboxError::NotFound("conversation"))?;
        let mut at_message = row.clone();
        at_message.last_message_at = event.received_at;
        at_message.updated_at = event.received_at;
        at_message.last_message_preview = Some(previews[i].clone());
        at_message.last_message_kind = Some(MessageKind::Incoming);
        row.unread_count -= 1;
        views.push(ConversationView::from(at_message));
    }
    views.reverse();
    for (&i, view) in stored.iter().zip(views) {
        let (event, known) = run[i];
        let message = MessageRow {
            id: event.message,
            conversation_id: known.conversation_id,
            kind: MessageKind::Incoming,
            content: event.content.clone(),
            sender_id: None,
            attributes: None,
            delivery_status: None,
            delivery_error: None,
            created_at: event.received_at,
        };
        published.push(MessageCreated {
            account: event.account,
            inbox: event.inbox,
            channel: known.channel,
            conversation: known.conversation_id,
            message: event.message,
            kind: MessageKind::Incoming,
            content: event.content.clone(),
            sender: None,
            contact_source_id: Some(event.contact.source_id.clone()),
            created_at: event.received_at,
        });
        let at = match changes.iter().position(|c| c.account == event.account) {
            Some(at) => at,
            None => {
                changes.push(Changes::new(event.account));
                changes.len() - 1
            }
        };
        let created = serde_json::to_string(&Created { message: MessageView::from(message), conversation: view })
            .map_err(StoreError::from)?;
        changes[at].push_in(known.inbox_id, FeedKind::MessageCreated, created);
    }
    tx.publish_all(&published).await?;
    let now = now_ms();
    for account_changes in changes {
        account_changes.record(tx, feed, now).await?;
    }
    Ok(())
}
