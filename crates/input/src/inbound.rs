//! Accepting what customers send: posts validated at the edge (`post.rs`), then recorded once.
//!
//! Every accepted post is, in one transaction of this namespace, recorded raw (`inbound_events`, unique by
//! inbox and Idempotency-Key), appended to the contact's transcript and published as
//! `input.message_received`. The answer is sent right after the commit; the inbox service creates the
//! contact, conversation and message from the event. A retry with the same key and body gets the first
//! answer again and changes nothing.
//!
//! Posts are recorded in batches by the service's recorder (`recorder.rs`), which answers each exactly as
//! recording it on its own here ([`Input::accept_alone`]) would; that path remains for a batch that fails.

use contracts::channel::{ChannelContact, ContactIdentified, MessageReceived};
use contracts::inbox::MessageId;
use contracts::plan::Limited;
use kernel::store::StoreError;

use crate::channels::Channel;
use crate::domain::{Direction, Origin};
use crate::post::{Accepted, ContactDetailsInput, MAX_KEY_CHARS, Post, replay};
use crate::recorder::{Answer, Submission};
use crate::store::{ContactDetails, ContactRow, NewEntry, NewInbound, Store};
use crate::{Input, InputError};
use kernel::clock::now_ms;

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
                origin: Origin::Widget,
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
            Some(contact) if contact.origin == Origin::Widget => Ok(contact),
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
            return replay(&earlier.body_sha256, earlier.message_id, &post.body_sha256);
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
                message_id: message,
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
                    Some(earlier) => replay(&earlier.body_sha256, earlier.message_id, &post.body_sha256),
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
                origin: post.origin,
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
                message_id: message,
                inbox: channel.inbox,
                source_id,
                direction: Direction::Incoming,
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
