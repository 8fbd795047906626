//! Group commit of accepted posts.
//!
//! Every statement is a hand-off to the database's worker thread, and under load those hand-offs, not the
//! work, limit how many posts a second can be recorded. So [`Input::accept`](crate::Input::accept) does not
//! record a post itself: it queues it for the one recorder task of the service, which takes whatever has
//! queued up meanwhile (up to [`MAX_BATCH`] posts, without waiting for more: alone, a post is a batch of
//! one) and records the batch with a fixed number of set-based statements, whatever its size:
//!
//! - on the readers: the idempotency keys recorded before, and the contacts known before;
//! - then the plan's allowance, once per account that has contacts writing for the first time;
//! - then one transaction: the raw events, the contacts as they were, the contacts' upsert, their first
//!   messages, the transcript lines and every `input.message_received`, in the posts' order;
//! - then the plan's usage, once per account that started conversations.
//!
//! The answers are those of recording the posts one by one, in their order (see `inbound.rs`). If the
//! batch cannot be recorded, each caller records its post on its own, the way posts were recorded before
//! batches, so one bad post fails only itself.
//!
//! Each event carries the id of the request that sent its post (`trace`), as if its caller had written it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use contracts::AccountId;
use contracts::channel::{ChannelContact, MessageReceived};
use contracts::inbox::{InboxId, MessageId};
use contracts::plan::{Allowance, Limited, PlanPort};
use kernel::store::Tx;
use tokio::sync::{mpsc, oneshot};

use crate::InputError;
use crate::domain::Direction;
use crate::post::{Accepted, Post, replay};
use crate::store::{ContactDetails, IdentifiedContactRow, KeyedInboundRow, NewEntry, NewInbound, Store};
use kernel::clock::now_ms;

/// How many posts may wait for the recorder; callers beyond it wait to queue theirs.
const QUEUE: usize = 1024;

/// The most posts one transaction records.
pub const MAX_BATCH: usize = 256;

/// A post waiting to be recorded, with the facts of its channel it needs, and where its answer goes.
pub struct Submission {
    pub inbox: InboxId,
    pub account: AccountId,
    pub post: Post,
    /// The id of the request that sent it, for its event's `trace`.
    pub trace: Option<String>,
    pub answer: oneshot::Sender<Answer>,
}

/// The recorder's answer to one post.
#[derive(Debug)]
pub enum Answer {
    /// What recording it in a batch came to.
    Recorded(Result<Accepted, InputError>),
    /// The batch could not be recorded: the caller records the post on its own.
    Alone(Post),
}

/// The recorder task's state: what it records with.
pub struct Recorder {
    store: Store,
    plan: Arc<dyn PlanPort>,
}

/// What a batch does with one of its posts, decided before its transaction.
enum Decision {
    /// Answered without recording anything: a replay of an earlier post, a reused key, the plan's limit.
    Answered(Result<Accepted, InputError>),
    /// The same key and body as the post of the batch at this index, before it: a replay of that one.
    SameAs(usize),
    /// To record, under this message id.
    Record(MessageId),
    /// To record on its own (the plan did not answer for its account).
    Alone,
}

/// Each post's answer, by its index in the batch; `None` for a post its caller records on its own.
type Answers = Vec<Option<Result<Accepted, InputError>>>;

/// Rows found by channel identity or idempotency key: by inbox, then by the text key within it, so that
/// a batch's `(InboxId, &str)` pairs look them up without allocating.
struct ByInbox<T>(HashMap<InboxId, HashMap<String, T>>);

/// The plan's allowance for new conversations of one account, as a batch spends it.
struct Budget {
    /// The plan's answer; `None` if it did not answer.
    allowance: Option<Allowance>,
    /// New conversations of the batch allowed so far.
    granted: u64,
}

impl Recorder {
    pub fn new(store: Store, plan: Arc<dyn PlanPort>) -> Self {
        Self { store, plan }
    }

    /// Starts the recorder task; it records what is sent to the returned queue until every sender is
    /// dropped (the service is gone) or the namespace closes (the process is stopping).
    pub fn spawn(self) -> mpsc::Sender<Submission> {
        let (queue, submissions) = mpsc::channel(QUEUE);
        tokio::spawn(self.run(submissions));
        queue
    }

    async fn run(self, mut submissions: mpsc::Receiver<Submission>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Waits for one post, then takes what else is queued, without waiting for more.
        while submissions.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if !self.record(std::mem::take(&mut batch)).await {
                // The namespace is closed: what is still queued is recorded by its callers, who get the
                // error the per-post path gets; so is what comes later, since the queue is closed.
                submissions.close();
                while let Some(submission) = submissions.recv().await {
                    let _ = submission.answer.send(Answer::Alone(submission.post));
                }
                return;
            }
        }
    }

    /// Records `batch` and answers each of its posts; false if the namespace is closed.
    pub async fn record(&self, batch: Vec<Submission>) -> bool {
        let (answers, open) = match self.record_batch(&batch).await {
            Ok(answers) => (answers, true),
            Err(error) => {
                let open = !matches!(&error, InputError::Store(store) if store.is_closed());
                if open {
                    tracing::warn!(batch.posts = batch.len(), error = %error, "batch not recorded; recording its posts one by one");
                }
                (batch.iter().map(|_| None).collect(), open)
            }
        };
        for (submission, answer) in batch.into_iter().zip(answers) {
            let answer = answer.map_or(Answer::Alone(submission.post), Answer::Recorded);
            // A caller that has gone (its request was cancelled) needs no answer.
            let _ = submission.answer.send(answer);
        }
        open
    }

    /// Records what can be of `batch` in one transaction, and answers each post.
    async fn record_batch(&self, batch: &[Submission]) -> Result<Answers, InputError> {
        let mut answers: Answers = batch.iter().map(|_| None).collect();
        let mut to_record = Vec::new();
        let mut same_as = Vec::new();
        for (index, decision) in self.decide(batch).await?.into_iter().enumerate() {
            match decision {
                Decision::Answered(answer) => answers[index] = Some(answer),
                Decision::Record(message) => to_record.push((index, message)),
                Decision::SameAs(first) => same_as.push((index, first)),
                Decision::Alone => {}
            }
        }
        if !to_record.is_empty() {
            self.record_posts(batch, &to_record, &mut answers).await?;
        }
        // A post with the same key and body as an earlier one of the batch: whatever that one came to, as a
        // replay. (If that one is recorded on its own, so is this one, after it.)
        for (index, first) in same_as {
            answers[index] = match &answers[first] {
                Some(Ok(Accepted::New(message) | Accepted::Replayed(message))) => {
                    Some(Ok(Accepted::Replayed(*message)))
                }
                Some(Err(InputError::IdempotencyKeyReused)) => Some(Err(InputError::IdempotencyKeyReused)),
                _ => None,
            };
        }
        Ok(answers)
    }

    /// Decides, in the posts' order, which to record, from what was recorded before and the plan: what
    /// recording them one by one would do.
    async fn decide(&self, batch: &[Submission]) -> Result<Vec<Decision>, InputError> {
        let earlier = self.earlier_posts(batch).await?;
        let signed: Vec<(InboxId, &str, i64)> = batch.iter().filter_map(|s| s.post.signature(s.inbox)).collect();
        // Signatures accepted before (a captured request replayed under another key), then those of this
        // batch as it goes: each is accepted once.
        let mut signatures: HashSet<(InboxId, String, i64)> = if signed.is_empty() {
            HashSet::new()
        } else {
            let used = self.store.signatures_used(&signed).await?;
            used.into_iter().map(|row| (row.inbox_id, row.body_sha256, row.signed_at)).collect()
        };
        let started = self.contacts_with_conversations(batch).await?;
        let mut decisions = Vec::with_capacity(batch.len());
        // The keys of the posts this batch records (with their index), and of those it leaves to their callers.
        let mut keys: HashMap<(InboxId, &str), usize> = HashMap::new();
        let mut alone_keys: HashSet<(InboxId, &str)> = HashSet::new();
        // Contacts whose first message is in this batch.
        let mut starting: HashSet<(InboxId, &str)> = HashSet::new();
        let mut budgets: HashMap<AccountId, Budget> = HashMap::new();
        for (index, Submission { inbox, account, post, .. }) in batch.iter().enumerate() {
            let key = post.idempotency_key.as_deref().map(|key| (*inbox, key));
            if let Some(key) = key {
                if let Some((sha256, message)) = earlier.get(key.0, key.1) {
                    decisions.push(Decision::Answered(replay(sha256, *message, &post.body_sha256)));
                    continue;
                }
                if let Some(&first) = keys.get(&key) {
                    decisions.push(if batch[first].post.body_sha256 == post.body_sha256 {
                        Decision::SameAs(first)
                    } else {
                        Decision::Answered(Err(InputError::IdempotencyKeyReused))
                    });
                    continue;
                }
                if alone_keys.contains(&key) {
                    decisions.push(Decision::Alone);
                    continue;
                }
            }
            // Marked as used only once the post is recorded (below), as recording it alone would do.
            let signature =
                post.signature(*inbox).map(|(inbox, sha256, signed_at)| (inbox, sha256.to_owned(), signed_at));
            if signature.as_ref().is_some_and(|signature| signatures.contains(signature)) {
                decisions.push(Decision::Answered(Err(InputError::SignatureReplayed)));
                continue;
            }
            let contact = (*inbox, post.contact.source_id.as_str());
            // A contact's first message starts their conversation, which the plan counts: ask before recording.
            if started.get(contact.0, contact.1).is_none() && !starting.contains(&contact) {
                if !budgets.contains_key(account) {
                    let allowance = self.conversations_allowance(*account).await;
                    budgets.insert(*account, Budget { allowance, granted: 0 });
                }
                match budgets.get_mut(account).and_then(Budget::spend) {
                    Some(Ok(())) => {
                        starting.insert(contact);
                    }
                    Some(Err(refusal)) => {
                        decisions.push(Decision::Answered(Err(InputError::PlanLimit(Box::new(refusal)))));
                        continue;
                    }
                    None => {
                        alone_keys.extend(key);
                        decisions.push(Decision::Alone);
                        continue;
                    }
                }
            }
            if let Some(key) = key {
                keys.insert(key, index);
            }
            signatures.extend(signature);
            decisions.push(Decision::Record(MessageId::new()));
        }
        Ok(decisions)
    }

    /// The body hash and message id of each post recorded before under a key of the batch.
    async fn earlier_posts(&self, batch: &[Submission]) -> Result<ByInbox<(String, MessageId)>, InputError> {
        let keys: Vec<(InboxId, &str)> =
            batch.iter().filter_map(|s| Some((s.inbox, s.post.idempotency_key.as_deref()?))).collect();
        if keys.is_empty() {
            return Ok(ByInbox(HashMap::new()));
        }
        let rows = self.store.inbound_by_keys(&keys).await?;
        Ok(rows.into_iter().map(|row| (row.inbox_id, row.idempotency_key, (row.body_sha256, row.message_id))).collect())
    }

    /// The contacts of the batch whose conversation has started (they have written before).
    async fn contacts_with_conversations(&self, batch: &[Submission]) -> Result<ByInbox<()>, InputError> {
        let rows = self.store.contacts_by_identity(&distinct_contacts(batch.iter())).await?;
        Ok(rows
            .into_iter()
            .filter(|row| row.first_message_at.is_some())
            .map(|row| (row.inbox_id, row.source_id, ()))
            .collect())
    }

    /// The plan's allowance for one more conversation of `account`; `None` if the plan did not answer.
    async fn conversations_allowance(&self, account: AccountId) -> Option<Allowance> {
        // Monthly limits are counted by the plan itself, so the third argument (a count the caller keeps,
        // for seat-style limits) is not used for them; the batch counts its own new conversations against
        // the answer instead (`Budget::spend`).
        match self.plan.allowance(account, Limited::ConversationsPerMonth, 0).await {
            Ok(allowance) => Some(allowance),
            Err(error) => {
                tracing::warn!(account.id = %account, error = %error, "plan allowance unavailable; posts recorded one by one");
                None
            }
        }
    }

    /// Records the posts `to_record` (index in the batch, message id) in one transaction, then counts the
    /// conversations they started; sets their answers.
    async fn record_posts(
        &self,
        batch: &[Submission],
        to_record: &[(usize, MessageId)],
        answers: &mut Answers,
    ) -> Result<(), InputError> {
        let now = now_ms();
        let inbounds: Vec<NewInbound<'_>> = to_record
            .iter()
            .map(|&(index, message_id)| {
                let Submission { inbox, post, .. } = &batch[index];
                NewInbound {
                    inbox: *inbox,
                    idempotency_key: post.idempotency_key.as_deref(),
                    body_sha256: &post.body_sha256,
                    payload: &post.payload,
                    source_id: &post.contact.source_id,
                    message_id,
                    signed_at: post.signed_at,
                    now_ms: now,
                }
            })
            .collect();
        let mut tx = self.store.begin().await?;
        let inserted: HashSet<MessageId> = Store::insert_inbounds(&mut tx, &inbounds).await?.into_iter().collect();
        let (recorded, raced): (Vec<(usize, MessageId)>, Vec<_>) =
            to_record.iter().partition(|(_, message_id)| inserted.contains(message_id));
        if !raced.is_empty() {
            // Their keys were recorded since `decide` looked (a retry racing on another replica, or a post
            // recorded on its own): each is a replay of whichever was recorded first.
            let raced: Vec<usize> = raced.into_iter().map(|(index, _)| index).collect();
            Self::answer_raced(&mut tx, batch, &raced, answers).await?;
        }
        if recorded.is_empty() {
            tx.commit().await?;
            return Ok(());
        }

        let posts = || recorded.iter().map(|(index, _)| &batch[*index]);
        let before = Store::contacts_by_identity_in(&mut tx, &distinct_contacts(posts())).await?;
        let before: ByInbox<IdentifiedContactRow> =
            before.into_iter().map(|row| (row.inbox_id, row.source_id.clone(), row)).collect();
        let Folded { contacts, starting, changing } = contacts_as_stored(posts(), &before);
        if !changing.is_empty() {
            let details: Vec<ContactDetails<'_>> = changing
                .iter()
                .map(|Submission { inbox, post, .. }| ContactDetails {
                    inbox: *inbox,
                    source_id: &post.contact.source_id,
                    origin: post.origin,
                    name: post.contact.name.as_deref(),
                    email: post.contact.email.as_deref(),
                    phone: post.contact.phone.as_deref(),
                    now_ms: now,
                })
                .collect();
            Store::upsert_contacts(&mut tx, &details).await?;
        }
        let identities: Vec<(InboxId, &str)> =
            starting.iter().map(|s| (s.inbox, s.post.contact.source_id.as_str())).collect();
        if !identities.is_empty() {
            Store::start_conversations(&mut tx, &identities, now).await?;
        }
        let entries: Vec<NewEntry<'_>> = recorded
            .iter()
            .map(|&(index, message_id)| {
                let Submission { inbox, post, .. } = &batch[index];
                NewEntry {
                    message_id,
                    inbox: *inbox,
                    source_id: &post.contact.source_id,
                    direction: Direction::Incoming,
                    content: &post.content,
                    conversation_id: None,
                    created_at: now,
                    delivery_status: None,
                }
            })
            .collect();
        Store::append_transcripts(&mut tx, &entries).await?;
        let events: Vec<MessageReceived> = recorded
            .iter()
            .zip(contacts)
            .map(|((index, message), contact)| {
                let Submission { inbox, account, post, .. } = &batch[*index];
                MessageReceived {
                    account: *account,
                    inbox: *inbox,
                    message: *message,
                    contact,
                    content: post.content.clone(),
                    received_at: now,
                }
            })
            .collect();
        let traces = recorded.iter().map(|(index, _)| batch[*index].trace.clone());
        tx.publish_traced(events.iter().zip(traces)).await?;
        tx.commit().await?;

        // Committed: nothing below may fail the batch.
        for (index, message) in &recorded {
            answers[*index] = Some(Ok(Accepted::New(*message)));
        }
        self.count_conversations(&starting).await;
        Ok(())
    }

    /// Answers posts whose key was recorded meanwhile as replays of the post recorded under it, and those
    /// whose signature was (a captured request racing under another key on another replica) as replayed
    /// signatures.
    async fn answer_raced(
        tx: &mut Tx<'_>,
        batch: &[Submission],
        raced: &[usize],
        answers: &mut Answers,
    ) -> Result<(), InputError> {
        let keyed =
            |index: &usize| (batch[*index].inbox, batch[*index].post.idempotency_key.as_deref().unwrap_or_default());
        let keys: Vec<(InboxId, &str)> = raced.iter().map(keyed).collect();
        let rows = Store::inbound_by_keys_in(tx, &keys).await?;
        let earlier: ByInbox<KeyedInboundRow> =
            rows.into_iter().map(|row| (row.inbox_id, row.idempotency_key.clone(), row)).collect();
        for index in raced {
            let (inbox, key) = keyed(index);
            answers[*index] = Some(match earlier.get(inbox, key) {
                Some(row) => replay(&row.body_sha256, row.message_id, &batch[*index].post.body_sha256),
                None if batch[*index].post.signed_at.is_some() => Err(InputError::SignatureReplayed),
                None => Err(InputError::Corrupt("an idempotency key collided but its event is missing".to_owned())),
            });
        }
        Ok(())
    }

    /// Counts the conversations the batch's posts `starting` started, once per account.
    async fn count_conversations(&self, starting: &[&Submission]) {
        let mut started: HashMap<AccountId, u64> = HashMap::new();
        for submission in starting {
            *started.entry(submission.account).or_default() += 1;
        }
        for (account, conversations) in started {
            if let Err(error) = self.plan.record_usage(account, Limited::ConversationsPerMonth, conversations).await {
                // The messages are recorded and will be delivered; a missed count only under-bills, so it is
                // logged rather than failing posts the clients would then retry.
                tracing::warn!(account.id = %account, conversations, error = %error, "conversation usage not recorded");
            }
        }
    }
}

impl Budget {
    /// Spends one new conversation: `Ok` if the plan allows it after those granted before in the batch,
    /// else the refusal to answer with; `None` if the plan did not answer.
    fn spend(&mut self) -> Option<Result<(), Allowance>> {
        let allowance = self.allowance.as_ref()?;
        let used = allowance.used + self.granted;
        if allowance.allowed && allowance.limit.is_none_or(|limit| used < limit) {
            self.granted += 1;
            Some(Ok(()))
        } else {
            Some(Err(Allowance { allowed: false, used, ..allowance.clone() }))
        }
    }
}

impl<T> ByInbox<T> {
    fn get(&self, inbox: InboxId, key: &str) -> Option<&T> {
        self.0.get(&inbox)?.get(key)
    }
}

impl<T> FromIterator<(InboxId, String, T)> for ByInbox<T> {
    fn from_iter<I: IntoIterator<Item = (InboxId, String, T)>>(rows: I) -> Self {
        let mut by_inbox: HashMap<InboxId, HashMap<String, T>> = HashMap::new();
        for (inbox, key, row) in rows {
            by_inbox.entry(inbox).or_default().insert(key, row);
        }
        Self(by_inbox)
    }
}

/// The channel identities (inbox, source id) of `posts`, each once, in order of first appearance.
fn distinct_contacts<'b>(posts: impl Iterator<Item = &'b Submission>) -> Vec<(InboxId, &'b str)> {
    let mut seen = HashSet::new();
    posts.map(|s| (s.inbox, s.post.contact.source_id.as_str())).filter(|identity| seen.insert(*identity)).collect()
}

/// A batch's posts folded over their contacts ([`contacts_as_stored`]).
struct Folded<'b> {
    /// Each post's contact as stored right after its own upsert.
    contacts: Vec<ChannelContact>,
    /// The posts that start their contact's conversation (the first of a contact without a first message).
    starting: Vec<&'b Submission>,
    /// The posts that change their contact: a contact's first post, and each that sends a name, e-mail or
    /// phone other than what the contact holds by then. Only these are upserted (the upsert of a post that
    /// changes nothing would rewrite the row as it was).
    changing: Vec<&'b Submission>,
}

/// Each post's contact as stored right after its own upsert — what it sent, and for what it left out what
/// was there — folded in the posts' order from the rows as they were before the batch; with the posts that
/// start a conversation and those that change their contact.
fn contacts_as_stored<'b>(
    posts: impl Iterator<Item = &'b Submission>,
    before: &ByInbox<IdentifiedContactRow>,
) -> Folded<'b> {
    let mut stored: HashMap<(InboxId, &str), ChannelContact> = HashMap::new();
    let mut folded = Folded { contacts: Vec::new(), starting: Vec::new(), changing: Vec::new() };
    for submission in posts {
        let Submission { inbox, post, .. } = submission;
        let source_id = post.contact.source_id.as_str();
        let mut changes = false;
        let contact = stored.entry((*inbox, source_id)).or_insert_with(|| {
            let row = before.get(*inbox, source_id);
            if row.is_none_or(|row| row.first_message_at.is_none()) {
                folded.starting.push(submission);
            }
            changes = row.is_none();
            ChannelContact {
                source_id: source_id.to_owned(),
                name: row.and_then(|row| row.name.clone()),
                email: row.and_then(|row| row.email.clone()),
                phone: row.and_then(|row| row.phone.clone()),
            }
        });
        for (field, sent) in [
            (&mut contact.name, &post.contact.name),
            (&mut contact.email, &post.contact.email),
            (&mut contact.phone, &post.contact.phone),
        ] {
            if sent.is_some() && sent != field {
                changes = true;
                field.clone_from(sent);
            }
        }
        if changes {
            folded.changing.push(submission);
        }
        folded.contacts.push(contact.clone());
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Origin;

    fn submission(inbox: InboxId, source_id: &str, name: Option<&str>, email: Option<&str>) -> Submission {
        Submission {
            inbox,
            account: AccountId::new(),
            post: Post {
                idempotency_key: None,
                body_sha256: String::new(),
                payload: String::new(),
                contact: ChannelContact {
                    source_id: source_id.into(),
                    name: name.map(str::to_owned),
                    email: email.map(str::to_owned),
                    phone: None,
                },
                origin: Origin::Server,
                signed_at: None,
                content: String::new(),
            },
            trace: None,
            answer: oneshot::channel().0,
        }
    }

    #[test]
    fn only_posts_that_change_their_contact_are_written_judged_by_the_contact_as_the_batch_left_it() {
        let inbox = InboxId::new();
        let before: ByInbox<IdentifiedContactRow> = [(
            inbox,
            "user-1".to_owned(),
            IdentifiedContactRow {
                inbox_id: inbox,
                source_id: "user-1".into(),
                name: Some("Hanako".into()),
                email: None,
                phone: None,
                first_message_at: Some(1),
            },
        )]
        .into_iter()
        .collect();
        let batch = [
            submission(inbox, "user-1", Some("Hanako"), None),
            submission(inbox, "user-1", None, None),
            submission(inbox, "user-1", None, Some("hanako@example.jp")),
            submission(inbox, "user-1", Some("Hanako Yamada"), Some("hanako@example.jp")),
            submission(inbox, "user-1", Some("Hanako"), None),
            submission(inbox, "user-2", None, None),
            submission(inbox, "user-2", None, None),
            submission(InboxId::new(), "user-1", Some("Hanako"), None),
        ];

        let written: Vec<(&str, Option<&str>, Option<&str>)> = contacts_as_stored(batch.iter(), &before)
            .changing
            .iter()
            .map(|s| {
                (s.post.contact.source_id.as_str(), s.post.contact.name.as_deref(), s.post.contact.email.as_deref())
            })
            .collect();
        assert_eq!(
            written,
            [
                ("user-1", None, Some("hanako@example.jp")),
                ("user-1", Some("Hanako Yamada"), Some("hanako@example.jp")),
                ("user-1", Some("Hanako"), None),
                ("user-2", None, None),
                ("user-1", Some("Hanako"), None),
            ],
            "the same details again write nothing; a name changed back is a change; a new contact (also the \
             same source id on another inbox) is written once"
        );
    }
}
