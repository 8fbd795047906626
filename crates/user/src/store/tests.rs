use kernel::store::{Location, Namespace};

use super::*;

struct Fixture {
    store: Store,
    owner: UserRow,
    account: AccountId,
    _dir: tempfile::TempDir,
}

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 24 * 60 * 60 * 1_000;

fn user(email: &str) -> UserRow {
    UserRow {
        id: UserId::new(),
        email: email.to_owned(),
        password_hash: "$argon2id$not-a-real-hash".to_owned(),
        name: "Someone".to_owned(),
        language: Language::Ja,
        created_at: NOW,
        updated_at: NOW,
    }
}

/// A fresh namespace with one account and its owner.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let namespace = Namespace::open("user", &Location::SqliteFile(dir.path().join("user.db")), Some(crate::MIGRATIONS))
        .await
        .expect("opens");
    namespace.migrate().await.expect("migrates");
    let store = Store::new(namespace);
    let owner = user("owner@example.jp");
    let account = AccountId::new();
    crate::registration::register(&store, &owner, account, "Acme").await.expect("account");
    Fixture { store, owner, account, _dir: dir }
}

impl Fixture {
    /// Invites `email` as an agent, expiring at `expires_at`; returns the stored invitation.
    async fn invite(&self, email: &str, token_hash: &str, expires_at: i64) -> InvitationRow {
        self.store
            .replace_invitation(NewInvitation {
                id: InvitationId::new(),
                account_id: self.account,
                email,
                name: None,
                role: Role::Agent,
                token_hash,
                invited_by: self.owner.id,
                now_ms: NOW,
                expires_at_ms: expires_at,
            })
            .await
            .expect("invites");
        self.store.invitation_by_hash(token_hash).await.expect("reads").expect("stored")
    }
}

#[tokio::test]
async fn seats_are_members_plus_invitations_still_pending() {
    let f = fixture().await;
    let accepted = f.invite("joined@example.jp", "h-joined", NOW + DAY).await;
    assert!(
        crate::registration::accept_invitation(&f.store, &accepted, &user("joined@example.jp")).await.expect("accepts")
    );
    f.invite("pending@example.jp", "h-pending", NOW + DAY).await;
    f.invite("expired@example.jp", "h-expired", NOW - 1).await;

    assert_eq!(
        f.store.seats_taken(f.account, NOW, "new@example.jp").await.expect("store"),
        3,
        "two members, one pending"
    );
    assert_eq!(
        f.store.seats_taken(f.account, NOW, "pending@example.jp").await.expect("store"),
        2,
        "re-inviting an address does not count its own pending invitation"
    );
    assert_eq!(f.store.seats_taken(AccountId::new(), NOW, "new@example.jp").await.expect("store"), 0);
}

#[tokio::test]
async fn inviting_an_address_again_leaves_one_invitation_with_the_new_token() {
    let f = fixture().await;
    let first = f.invite("kenji@example.jp", "h-first", NOW + DAY).await;
    let second = f.invite("kenji@example.jp", "h-second", NOW + DAY).await;

    let pending = f.store.pending_invitations(f.account, NOW).await.expect("lists");

    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), [second.id]);
    assert_ne!(first.id, second.id);
    assert!(f.store.invitation_by_hash("h-first").await.expect("reads").is_none());
}

#[tokio::test]
async fn an_invitation_is_accepted_once_and_makes_a_member_with_its_role() {
    let f = fixture().await;
    let invitation = f.invite("kenji@example.jp", "h-kenji", NOW + DAY).await;
    let (kenji, impostor) = (user("kenji@example.jp"), user("kenji@example.jp"));

    let first = crate::registration::accept_invitation(&f.store, &invitation, &kenji).await.expect("store");
    let second = crate::registration::accept_invitation(&f.store, &invitation, &impostor).await.expect("store");

    assert_eq!((first, second), (true, false));
    let member = f.store.member(kenji.id, f.account).await.expect("reads").expect("a member");
    assert_eq!(member.membership.role, Role::Agent);
    assert!(f.store.user_by_id(impostor.id).await.expect("reads").is_none(), "the losing acceptance wrote nothing");
    let used = f.store.invitation_by_hash("h-kenji").await.expect("reads").expect("kept");
    assert_eq!(used.used_at, Some(NOW));
    assert!(f.store.pending_invitations(f.account, NOW).await.expect("lists").is_empty());
}

#[tokio::test]
async fn only_a_pending_invitation_of_the_account_can_be_revoked() {
    let f = fixture().await;
    let pending = f.invite("pending@example.jp", "h-pending", NOW + DAY).await;
    let used = f.invite("used@example.jp", "h-used", NOW + DAY).await;
    assert!(crate::registration::accept_invitation(&f.store, &used, &user("used@example.jp")).await.expect("accepts"));

    assert!(!f.store.revoke_invitation(AccountId::new(), pending.id).await.expect("store"), "another account");
    assert!(!f.store.revoke_invitation(f.account, used.id).await.expect("store"), "already used");
    assert!(f.store.revoke_invitation(f.account, pending.id).await.expect("store"));
    assert!(f.store.invitation_by_hash("h-pending").await.expect("reads").is_none());
}

#[tokio::test]
async fn removing_a_member_revokes_their_sessions_and_the_last_owner_stays() {
    let f = fixture().await;
    let invitation = f.invite("kenji@example.jp", "h-kenji", NOW + DAY).await;
    let kenji = user("kenji@example.jp");
    assert!(crate::registration::accept_invitation(&f.store, &invitation, &kenji).await.expect("accepts"));
    let token = |hash| NewRefreshToken {
        family_id: "family",
        user_id: kenji.id,
        account_id: f.account,
        token_hash: hash,
        now_ms: NOW,
        expires_at_ms: NOW + DAY,
    };
    assert!(f.store.insert_refresh_token(token("rt-kenji"), NOW - 1).await.expect("token"));

    assert_eq!(f.store.remove_member(f.account, f.owner.id, NOW).await.expect("store"), Removal::LastOwner);
    let revocation = Revocation { user: kenji.id, account: Some(f.account), before_ms: NOW };
    assert_eq!(f.store.remove_member(f.account, kenji.id, NOW).await.expect("store"), Removal::Removed(revocation));
    assert_eq!(f.store.revocations_since(NOW).await.expect("store"), [revocation], "recorded with the removal");
    assert!(
        !f.store.insert_refresh_token(token("rt-late"), NOW - 1).await.expect("store"),
        "a session whose sign-in began before the removal is not opened after it"
    );
    assert!(f.store.insert_refresh_token(token("rt-after"), NOW).await.expect("store"), "one begun after it is");
    assert_eq!(f.store.trim_revocations(NOW + 1).await.expect("store"), 1);
    assert!(f.store.revocations_since(0).await.expect("store").is_empty());
    assert_eq!(f.store.remove_member(f.account, kenji.id, NOW).await.expect("store"), Removal::NotAMember);
    let token = f.store.refresh_token_by_hash("rt-kenji").await.expect("reads").expect("kept");
    assert_eq!(token.revoked_at, Some(NOW));
    let members = f.store.members(f.account).await.expect("lists");
    assert_eq!(members.iter().map(|m| m.user.id).collect::<Vec<_>>(), [f.owner.id]);
}
