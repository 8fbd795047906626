//! An account's members through the public API, in every topology: the member list, invitations (made by
//! owners and admins, limited by the plan, accepted once) and what each role may do to other members.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, Session, TestApp, TestUser};
use crate::in_every_topology;

in_every_topology!(
    an_invited_agent_accepts_is_signed_in_and_can_log_in_as_an_agent,
    the_member_list_shows_everyone_in_the_account_oldest_first,
    an_agent_cannot_invite_or_see_invitations,
    nobody_invites_an_owner,
    the_free_plan_refuses_an_invitation_past_its_agent_limit,
    an_invitation_token_is_single_use,
    inviting_an_address_again_replaces_its_pending_invitation,
    a_registered_address_cannot_be_invited,
    a_revoked_invitation_cannot_be_accepted,
    another_accounts_invitation_cannot_be_revoked,
    an_unknown_invitation_token_is_not_found,
    an_owner_reads_and_renames_a_member_but_not_their_email,
    an_agent_reads_other_members_but_cannot_change_them,
    an_owner_removes_an_agent_whose_sessions_end,
    a_removed_agents_access_token_and_open_socket_stop_working_everywhere_within_a_second,
    signing_out_everywhere_refuses_every_access_token_of_the_user,
    nobody_removes_themselves_and_an_admin_cannot_remove_an_owner,
    another_accounts_member_cannot_be_removed,
    an_owner_makes_an_agent_an_admin_whose_renewed_token_carries_the_role,
    roles_are_changed_by_owners_and_admins_and_ownership_only_by_owners,
);

const PASSWORD: &str = "agent password 1";

fn unique_email(who: &str) -> String {
    format!("{who}-{}@example.jp", uuid::Uuid::new_v4().simple())
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.request(Method::DELETE, path, Some(token), None).await
}

/// `POST /api/users/invitations` as the holder of `token`.
async fn invite(app: &TestApp, token: &str, email: &str, role: &str) -> Reply {
    app.request(Method::POST, "/api/users/invitations", Some(token), Some(json!({ "email": email, "role": role })))
        .await
}

/// `POST /api/users/invitations/accept` with `invitation_token`.
async fn accept(app: &TestApp, invitation_token: &str, name: &str) -> Reply {
    app.post(
        "/api/users/invitations/accept",
        json!({ "token": invitation_token, "name": name, "password": PASSWORD, "language": "en" }),
    )
    .await
}

/// Invites a new address as `role` with `inviter`'s token and accepts; returns the new member, signed in.
pub(crate) async fn join(app: &TestApp, inviter: &str, role: &str) -> (TestUser, Session) {
    let email = unique_email(role);
    let invited = invite(app, inviter, &email, role).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    let accepted = accept(app, invited.body["token"].as_str().expect("token"), "Kenji Sato").await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{accepted:?}");
    let user = TestUser {
        id: accepted.body["user"]["id"].as_str().expect("user id").to_owned(),
        account_id: accepted.body["account"]["id"].as_str().expect("account id").to_owned(),
        email,
        password: PASSWORD.to_owned(),
    };
    (user, serde_json::from_value(accepted.body).expect("session body"))
}

/// An account on the starter plan (five seats), so tests can add more than one member.
async fn starter_owner(app: &TestApp) -> (TestUser, Session) {
    let (owner, session) = app.signed_in().await;
    app.move_to_plan(&owner, &session.access_token, "starter").await;
    (owner, session)
}

fn emails(list: &Value) -> Vec<&str> {
    list.as_array().expect("list").iter().map(|m| m["email"].as_str().expect("email")).collect()
}

async fn an_invited_agent_accepts_is_signed_in_and_can_log_in_as_an_agent(app: TestApp) {
    let (owner, session) = app.signed_in().await;
    let email = unique_email("kenji");

    let invited = invite(&app, &session.access_token, &email, "agent").await;
    let accepted = accept(&app, invited.body["token"].as_str().expect("token"), "Kenji Sato").await;

    assert_eq!(invited.status, StatusCode::CREATED, "{invited:?}");
    assert_eq!(invited.body["invitation"]["email"], email.as_str());
    assert_eq!(invited.body["invitation"]["role"], "agent");
    assert!(invited.body["invitation"]["expires_at"].is_string());
    assert!(invited.body["token"].as_str().is_some_and(|t| t.starts_with("inv_")));
    assert_eq!(accepted.status, StatusCode::CREATED, "{accepted:?}");
    assert_eq!(accepted.body["token_type"], "Bearer");
    assert_eq!(accepted.body["user"]["email"], email.as_str());
    assert_eq!(accepted.body["user"]["language"], "en");
    assert_eq!(accepted.body["account"]["id"], owner.account_id.as_str());
    assert_eq!(accepted.body["account"]["role"], "agent");
    let agent = TestUser {
        id: accepted.body["user"]["id"].as_str().expect("id").to_owned(),
        account_id: owner.account_id.clone(),
        email,
        password: PASSWORD.to_owned(),
    };
    let login = app.login(&agent).await;
    let me = app.get(&format!("/api/users/{}", agent.id), &login.access_token).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["account"]["role"], "agent");
    assert_eq!(me.body["account"]["id"], owner.account_id.as_str());
}

async fn the_member_list_shows_everyone_in_the_account_oldest_first(app: TestApp) {
    let (owner, session) = app.signed_in().await;
    let (agent, agent_session) = join(&app, &session.access_token, "agent").await;
    let stranger = app.register().await;

    let as_owner = app.get("/api/users", &session.access_token).await;
    let as_agent = app.get("/api/users", &agent_session.access_token).await;

    assert_eq!(as_owner.status, StatusCode::OK, "{as_owner:?}");
    assert_eq!(emails(&as_owner.body), [owner.email.as_str(), agent.email.as_str()]);
    assert!(!emails(&as_owner.body).contains(&stranger.email.as_str()));
    assert_eq!(as_owner.body[0]["role"], "owner");
    assert_eq!(as_owner.body[1]["role"], "agent");
    assert_eq!(as_owner.body[1]["id"], agent.id.as_str());
    assert_eq!(as_owner.body[1]["name"], "Kenji Sato");
    assert_eq!(as_owner.body[1]["language"], "en");
    assert!(as_owner.body[1]["created_at"].is_string());
    assert!(as_owner.body[1].get("password_hash").is_none());
    assert_eq!(as_agent.body, as_owner.body);
}

async fn an_agent_cannot_invite_or_see_invitations(app: TestApp) {
    let (_, session) = starter_owner(&app).await;
    let (_, agent) = join(&app, &session.access_token, "agent").await;

    let invited = invite(&app, &agent.access_token, &unique_email("friend"), "agent").await;
    let listed = app.get("/api/users/invitations", &agent.access_token).await;

    invited.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    listed.assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn nobody_invites_an_owner(app: TestApp) {
    let (_, session) = starter_owner(&app).await;
    let (_, admin) = join(&app, &session.access_token, "admin").await;

    for token in [&session.access_token, &admin.access_token] {
        let reply = invite(&app, token, &unique_email("boss"), "owner").await;

        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], "role");
        assert_eq!(reply.body["errors"][0]["reason"], "not_invitable");
    }
}

async fn the_free_plan_refuses_an_invitation_past_its_agent_limit(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let first = invite(&app, &session.access_token, &unique_email("first"), "agent").await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");

    // The owner and the pending invitation take the free plan's two seats.
    let second = invite(&app, &session.access_token, &unique_email("second"), "agent").await;

    second.assert_problem(StatusCode::FORBIDDEN, "plan_limit_reached");
    assert_eq!(second.body["limit"], "agents");
    assert_eq!(second.body["plan"], "free");
    assert_eq!(second.body["used"], 2);
    assert_eq!(second.body["max"], 2);
}

async fn an_invitation_token_is_single_use(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let invited = invite(&app, &session.access_token, &unique_email("once"), "agent").await;
    let token = invited.body["token"].as_str().expect("token");

    let first = accept(&app, token, "Kenji Sato").await;
    let again = accept(&app, token, "Someone Else").await;

    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    again.assert_problem(StatusCode::CONFLICT, "invitation_used");
    let members = app.get("/api/users", &session.access_token).await;
    assert_eq!(members.body.as_array().map(Vec::len), Some(2));
}

async fn inviting_an_address_again_replaces_its_pending_invitation(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let email = unique_email("again");

    let first = invite(&app, &session.access_token, &email, "agent").await;
    // On the free plan this would be refused if the first invitation still held a seat.
    let second = invite(&app, &session.access_token, &email, "admin").await;

    assert_eq!(second.status, StatusCode::CREATED, "{second:?}");
    let pending = app.get("/api/users/invitations", &session.access_token).await;
    assert_eq!(pending.status, StatusCode::OK, "{pending:?}");
    assert_eq!(emails(&pending.body), [email.as_str()]);
    assert_eq!(pending.body[0]["id"], second.body["invitation"]["id"]);
    assert_eq!(pending.body[0]["role"], "admin");
    accept(&app, first.body["token"].as_str().expect("token"), "Kenji Sato")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invitation_not_found");
    let accepted = accept(&app, second.body["token"].as_str().expect("token"), "Kenji Sato").await;
    assert_eq!(accepted.body["account"]["role"], "admin", "{accepted:?}");
}

async fn a_registered_address_cannot_be_invited(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let someone = app.register().await;

    let reply = invite(&app, &session.access_token, &someone.email.to_uppercase(), "agent").await;

    reply.assert_problem(StatusCode::CONFLICT, "email_taken");
}

async fn a_revoked_invitation_cannot_be_accepted(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let invited = invite(&app, &session.access_token, &unique_email("revoked"), "agent").await;
    let path = format!("/api/users/invitations/{}", invited.body["invitation"]["id"].as_str().expect("id"));

    let revoked = delete(&app, &path, &session.access_token).await;

    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    let pending = app.get("/api/users/invitations", &session.access_token).await;
    assert_eq!(pending.body, json!([]));
    accept(&app, invited.body["token"].as_str().expect("token"), "Kenji Sato")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "invitation_not_found");
    delete(&app, &path, &session.access_token).await.assert_problem(StatusCode::NOT_FOUND, "invitation_not_found");
}

async fn another_accounts_invitation_cannot_be_revoked(app: TestApp) {
    let (_, mine) = app.signed_in().await;
    let (_, theirs) = app.signed_in().await;
    let invited = invite(&app, &theirs.access_token, &unique_email("theirs"), "agent").await;
    let path = format!("/api/users/invitations/{}", invited.body["invitation"]["id"].as_str().expect("id"));

    let reply = delete(&app, &path, &mine.access_token).await;

    reply.assert_problem(StatusCode::NOT_FOUND, "invitation_not_found");
    let pending = app.get("/api/users/invitations", &theirs.access_token).await;
    assert_eq!(pending.body.as_array().map(Vec::len), Some(1), "{pending:?}");
    let mine_pending = app.get("/api/users/invitations", &mine.access_token).await;
    assert_eq!(mine_pending.body, json!([]));
}

async fn an_unknown_invitation_token_is_not_found(app: TestApp) {
    let reply = accept(&app, "inv_not-a-real-token", "Kenji Sato").await;

    reply.assert_problem(StatusCode::NOT_FOUND, "invitation_not_found");
}

async fn an_owner_reads_and_renames_a_member_but_not_their_email(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let (agent, _) = join(&app, &session.access_token, "agent").await;
    let path = format!("/api/users/{}", agent.id);

    let read = app.get(&path, &session.access_token).await;
    let renamed = app.put(&path, &session.access_token, json!({ "name": "Kenji S." })).await;
    let email = app.put(&path, &session.access_token, json!({ "email": unique_email("moved") })).await;

    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["email"], agent.email.as_str());
    assert_eq!(read.body["account"]["role"], "agent");
    assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");
    assert_eq!(renamed.body["name"], "Kenji S.");
    email.assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn an_agent_reads_other_members_but_cannot_change_them(app: TestApp) {
    let (owner, session) = starter_owner(&app).await;
    let (_, agent) = join(&app, &session.access_token, "agent").await;
    let (colleague, _) = join(&app, &session.access_token, "agent").await;

    let read = app.get(&format!("/api/users/{}", owner.id), &agent.access_token).await;
    let rename_owner = app.put(&format!("/api/users/{}", owner.id), &agent.access_token, json!({ "name": "X" })).await;
    let rename_peer =
        app.put(&format!("/api/users/{}", colleague.id), &agent.access_token, json!({ "name": "X" })).await;

    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["account"]["role"], "owner");
    rename_owner.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    rename_peer.assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

async fn an_owner_removes_an_agent_whose_sessions_end(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let (agent, agent_session) = join(&app, &session.access_token, "agent").await;

    let removed = delete(&app, &format!("/api/users/{}", agent.id), &session.access_token).await;

    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    let members = app.get("/api/users", &session.access_token).await;
    assert!(!emails(&members.body).contains(&agent.email.as_str()));
    app.post("/api/users/refresh", json!({ "refresh_token": agent_session.refresh_token }))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    app.try_login(&agent.email, &agent.password).await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.get(&format!("/api/users/{}", agent.id), &session.access_token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "user_not_found");
}

/// Polls `GET path` with `token` until it is refused as revoked. Revocations reach other processes within
/// about a second; the deadline is generous so that a busy machine does not fail the test.
async fn refused_as_revoked(app: &TestApp, path: &str, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let reply = app.get(path, token).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            reply.assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
            return;
        }
        assert!(std::time::Instant::now() < deadline, "GET {path} still served a revoked token: {reply:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_removed_agents_access_token_and_open_socket_stop_working_everywhere_within_a_second(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let (agent, agent_session) = join(&app, &session.access_token, "agent").await;
    let token = &agent_session.access_token;
    assert_eq!(app.get("/api/conversations", token).await.status, StatusCode::OK);
    let mut feed = crate::desk::Feed::connect(&app, token, None).await;

    let removed = delete(&app, &format!("/api/users/{}", agent.id), &session.access_token).await;

    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{removed:?}");
    refused_as_revoked(&app, "/api/conversations", token).await;
    refused_as_revoked(&app, "/api/plan", token).await;
    assert_eq!(feed.close_code().await, 4401, "the open socket is closed");
    let reconnect = crate::desk::Feed::try_connect(&app, token, None).await;
    assert!(reconnect.is_err(), "a revoked token opens no socket");
}

async fn signing_out_everywhere_refuses_every_access_token_of_the_user(app: TestApp) {
    let (user, first) = app.signed_in().await;
    let second = app.login(&user).await;

    let signed_out = app.request(Method::POST, "/api/users/logout-all", Some(&first.access_token), None).await;

    assert_eq!(signed_out.status, StatusCode::NO_CONTENT, "{signed_out:?}");
    for session in [&first, &second] {
        refused_as_revoked(&app, &format!("/api/users/{}", user.id), &session.access_token).await;
        refused_as_revoked(&app, "/api/conversations", &session.access_token).await;
        app.post("/api/users/refresh", json!({ "refresh_token": session.refresh_token }))
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    let fresh = app.login(&user).await;
    assert_eq!(
        app.get("/api/conversations", &fresh.access_token).await.status,
        StatusCode::OK,
        "signing in again works"
    );
}

async fn nobody_removes_themselves_and_an_admin_cannot_remove_an_owner(app: TestApp) {
    let (owner, session) = starter_owner(&app).await;
    let (admin, admin_session) = join(&app, &session.access_token, "admin").await;
    let (_, agent_session) = join(&app, &session.access_token, "agent").await;

    let owner_self = delete(&app, &format!("/api/users/{}", owner.id), &session.access_token).await;
    let admin_self = delete(&app, &format!("/api/users/{}", admin.id), &admin_session.access_token).await;
    let admin_owner = delete(&app, &format!("/api/users/{}", owner.id), &admin_session.access_token).await;
    let agent_admin = delete(&app, &format!("/api/users/{}", admin.id), &agent_session.access_token).await;

    owner_self.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "cannot_remove_self");
    admin_self.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "cannot_remove_self");
    admin_owner.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    agent_admin.assert_problem(StatusCode::FORBIDDEN, "forbidden");
    let members = app.get("/api/users", &session.access_token).await;
    assert_eq!(members.body.as_array().map(Vec::len), Some(3));
}

async fn another_accounts_member_cannot_be_removed(app: TestApp) {
    let (_, mine) = app.signed_in().await;
    let theirs = app.register().await;

    let reply = delete(&app, &format!("/api/users/{}", theirs.id), &mine.access_token).await;

    reply.assert_problem(StatusCode::NOT_FOUND, "user_not_found");
    assert_eq!(app.login(&theirs).await.token_type, "Bearer");
}

async fn put_role(app: &TestApp, token: &str, user: &str, role: &str) -> Reply {
    app.put(&format!("/api/users/{user}/role"), token, json!({ "role": role })).await
}

async fn an_owner_makes_an_agent_an_admin_whose_renewed_token_carries_the_role(app: TestApp) {
    let (_, session) = app.signed_in().await;
    let (agent, agent_session) = join(&app, &session.access_token, "agent").await;
    assert_eq!(app.get("/api/users/invitations", &agent_session.access_token).await.status, StatusCode::FORBIDDEN);

    let changed = put_role(&app, &session.access_token, &agent.id, "admin").await;

    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["role"], "admin");
    // The token that says "agent" stops working; the refresh token stays, and renews with the new role.
    refused_as_revoked(&app, "/api/users/invitations", &agent_session.access_token).await;
    let renewed = app.post("/api/users/refresh", json!({ "refresh_token": agent_session.refresh_token })).await;
    assert_eq!(renewed.status, StatusCode::OK, "{renewed:?}");
    assert_eq!(renewed.body["account"]["role"], "admin");
    let token = renewed.body["access_token"].as_str().expect("access token");
    assert_eq!(app.get("/api/users/invitations", token).await.status, StatusCode::OK);
    let members = app.get("/api/users", &session.access_token).await;
    let listed = members.body.as_array().expect("members").iter().find(|m| m["id"] == agent.id.as_str()).cloned();
    assert_eq!(listed.map(|m| m["role"].clone()), Some(json!("admin")));
}

async fn roles_are_changed_by_owners_and_admins_and_ownership_only_by_owners(app: TestApp) {
    let (owner, session) = starter_owner(&app).await;
    let (admin, admin_session) = join(&app, &session.access_token, "admin").await;
    let (agent, agent_session) = join(&app, &session.access_token, "agent").await;

    put_role(&app, &agent_session.access_token, &admin.id, "agent")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    put_role(&app, &session.access_token, &owner.id, "admin")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "cannot_change_own_role");
    put_role(&app, &admin_session.access_token, &agent.id, "owner")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    put_role(&app, &admin_session.access_token, &owner.id, "agent")
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    put_role(&app, &session.access_token, &agent.id, "superuser")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    put_role(&app, &session.access_token, &uuid::Uuid::new_v4().to_string(), "agent")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "user_not_found");
    let demoted = put_role(&app, &admin_session.access_token, &agent.id, "agent").await;
    assert_eq!(demoted.status, StatusCode::OK, "the role it has: {demoted:?}");

    // An owner makes the admin an owner, who can then make the first owner an admin: the account still
    // has an owner.
    let promoted = put_role(&app, &session.access_token, &admin.id, "owner").await;
    assert_eq!(promoted.body["role"], "owner", "{promoted:?}");
    let renewed = app.post("/api/users/refresh", json!({ "refresh_token": admin_session.refresh_token })).await;
    let new_owner = renewed.body["access_token"].as_str().expect("access token").to_owned();
    let stepped_down = put_role(&app, &new_owner, &owner.id, "admin").await;
    assert_eq!(stepped_down.body["role"], "admin", "{stepped_down:?}");
}
