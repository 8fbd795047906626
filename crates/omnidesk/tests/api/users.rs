//! The user service through the public API, in every topology.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::in_every_topology;

in_every_topology!(
    registering_creates_the_user_and_an_account_they_own,
    a_duplicate_email_is_a_conflict_whatever_its_case,
    invalid_registration_fields_are_each_named,
    logging_in_returns_a_bearer_token_that_reads_the_user_with_their_plan,
    a_wrong_password_and_an_unknown_email_look_the_same,
    a_user_updates_their_name_email_and_password,
    changing_the_password_needs_the_current_one,
    the_language_is_ja_or_en,
    a_user_cannot_see_or_change_someone_in_another_account,
    requests_without_a_valid_token_are_unauthorized,
    a_refresh_token_rotates_and_cannot_be_replayed,
    logging_out_revokes_the_refresh_token,
    repeated_logins_for_one_address_are_rate_limited,
    a_strangers_failed_logins_do_not_lock_the_owner_out,
);

async fn registering_creates_the_user_and_an_account_they_own(app: TestApp) {
    let reply = app.try_register("Aiko@Example.jp", "correct horse battery", "Aiko Tanaka").await;

    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["user"]["email"], "aiko@example.jp");
    assert_eq!(reply.body["user"]["language"], "ja");
    assert_eq!(reply.body["account"]["role"], "owner");
    assert!(reply.body["user"].get("password_hash").is_none());
    let location = reply.headers["location"].to_str().expect("location");
    assert_eq!(location, format!("/api/users/{}", reply.body["user"]["id"].as_str().expect("id")));
}

async fn a_duplicate_email_is_a_conflict_whatever_its_case(app: TestApp) {
    let user = app.register().await;

    let reply = app.try_register(&user.email.to_uppercase(), "another password", "Someone").await;

    reply.assert_problem(StatusCode::CONFLICT, "email_taken");
}

async fn invalid_registration_fields_are_each_named(app: TestApp) {
    let reply = app
        .post(
            "/api/users/register",
            json!({ "email": "not-an-address", "password": "short", "name": " ", "language": "fr" }),
        )
        .await;

    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let mut fields: Vec<(&str, &str)> = reply.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["field"].as_str().expect("field"), e["reason"].as_str().expect("reason")))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("account_name", "required"),
            ("email", "invalid_format"),
            ("language", "unsupported"),
            ("name", "required"),
            ("password", "too_short")
        ]
    );
}

async fn logging_in_returns_a_bearer_token_that_reads_the_user_with_their_plan(app: TestApp) {
    let user = app.register().await;

    let session = app.login(&user).await;
    let reply = app.get(&format!("/api/users/{}", user.id), &session.access_token).await;

    assert_eq!(session.token_type, "Bearer");
    assert!(session.expires_in > 0 && session.expires_in <= 900);
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["id"], user.id.as_str());
    assert_eq!(reply.body["email"], user.email.as_str());
    assert_eq!(reply.body["account"]["id"], user.account_id.as_str());
    assert_eq!(reply.body["account"]["role"], "owner");
    // The plan comes from the plan service through its port: a direct call in the monolith, HTTP otherwise.
    assert_eq!(reply.body["account"]["plan"]["code"], "free");
}

async fn a_wrong_password_and_an_unknown_email_look_the_same(app: TestApp) {
    let user = app.register().await;

    let wrong_password = app.try_login(&user.email, "not the password").await;
    let unknown_email = app.try_login("nobody-here@example.jp", "not the password").await;

    wrong_password.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    unknown_email.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong_password.body["detail"], unknown_email.body["detail"]);
}

async fn a_user_updates_their_name_email_and_password(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let new_email = format!("renamed-{}", user.email);

    let reply = app
        .put(
            &format!("/api/users/{}", user.id),
            &session.access_token,
            json!({ "name": "田中 愛子", "email": new_email, "password": "a brand new secret", "current_password": user.password }),
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["name"], "田中 愛子");
    assert_eq!(reply.body["email"], new_email.as_str());
    assert_eq!(app.try_login(&new_email, "a brand new secret").await.status, StatusCode::OK);
    assert_eq!(app.try_login(&user.email, &user.password).await.status, StatusCode::UNAUTHORIZED);
    // A password change ends the other sessions.
    let refresh = app.post("/api/users/refresh", json!({ "refresh_token": session.refresh_token })).await;
    refresh.assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

async fn changing_the_password_needs_the_current_one(app: TestApp) {
    let (user, session) = app.signed_in().await;
    let path = format!("/api/users/{}", user.id);

    let missing = app.put(&path, &session.access_token, json!({ "password": "a brand new secret" })).await;
    let wrong = app
        .put(&path, &session.access_token, json!({ "password": "a brand new secret", "current_password": "nope nope" }))
        .await;

    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(missing.body["errors"][0]["field"], "current_password");
    wrong.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(wrong.body["errors"][0]["reason"], "incorrect");
    assert_eq!(app.try_login(&user.email, &user.password).await.status, StatusCode::OK);
}

async fn the_language_is_ja_or_en(app: TestApp) {
    let (user, session) = app.signed_in().await;

    let english = app.put("/api/users/update-language", &session.access_token, json!({ "language": "en" })).await;
    let french = app.put("/api/users/update-language", &session.access_token, json!({ "language": "fr" })).await;
    let reread = app.get(&format!("/api/users/{}", user.id), &session.access_token).await;

    assert_eq!(english.status, StatusCode::OK, "{english:?}");
    assert_eq!(english.body["language"], "en");
    french.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(french.body["errors"][0]["field"], "language");
    assert_eq!(reread.body["language"], "en");
}

async fn a_user_cannot_see_or_change_someone_in_another_account(app: TestApp) {
    let (_, mine) = app.signed_in().await;
    let theirs = app.register().await;
    let path = format!("/api/users/{}", theirs.id);

    let read = app.get(&path, &mine.access_token).await;
    let write = app.put(&path, &mine.access_token, json!({ "name": "Mallory" })).await;

    read.assert_problem(StatusCode::NOT_FOUND, "user_not_found");
    write.assert_problem(StatusCode::NOT_FOUND, "user_not_found");
}

async fn requests_without_a_valid_token_are_unauthorized(app: TestApp) {
    let user = app.register().await;
    let path = format!("/api/users/{}", user.id);

    let missing = app.request(reqwest::Method::GET, &path, None, None).await;
    let garbage = app.get(&path, "not.a.token").await;

    missing.assert_problem(StatusCode::UNAUTHORIZED, "missing_token");
    garbage.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(garbage.headers["www-authenticate"], "Bearer");
}

async fn a_refresh_token_rotates_and_cannot_be_replayed(app: TestApp) {
    let (user, session) = app.signed_in().await;

    let rotated = app.post("/api/users/refresh", json!({ "refresh_token": session.refresh_token })).await;
    let replayed = app.post("/api/users/refresh", json!({ "refresh_token": session.refresh_token })).await;

    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_refresh = rotated.body["refresh_token"].as_str().expect("new refresh token");
    assert_ne!(new_refresh, session.refresh_token);
    let access = rotated.body["access_token"].as_str().expect("access token");
    assert_eq!(app.get(&format!("/api/users/{}", user.id), access).await.status, StatusCode::OK);
    replayed.assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    // The replay revoked the family: the token issued by the rotation is dead too.
    let after_theft = app.post("/api/users/refresh", json!({ "refresh_token": new_refresh })).await;
    after_theft.assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

async fn logging_out_revokes_the_refresh_token(app: TestApp) {
    let (_, session) = app.signed_in().await;

    let logout = app.post("/api/users/logout", json!({ "refresh_token": session.refresh_token })).await;
    let refresh = app.post("/api/users/refresh", json!({ "refresh_token": session.refresh_token })).await;

    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    refresh.assert_problem(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

async fn repeated_logins_for_one_address_are_rate_limited(app: TestApp) {
    let user = app.register().await;
    for _ in 0..5 {
        app.try_login(&user.email, "wrong password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    let limited = app.try_login(&user.email, &user.password).await;

    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "login_rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

/// The app as seen from another client address: a client bound to `ip` (any of 127.0.0.0/8 reaches the
/// loopback listener), so the server tells the two clients apart.
fn from_address(app: &TestApp, ip: [u8; 4]) -> TestApp {
    let mut other = TestApp::new(app.base_url.clone(), app.data_dir.clone(), None);
    other.http = reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().expect("client");
    other
}

async fn a_strangers_failed_logins_do_not_lock_the_owner_out(app: TestApp) {
    let owner = app.register().await;
    let stranger = from_address(&app, [127, 0, 0, 66]);
    for _ in 0..5 {
        stranger
            .try_login(&owner.email, "not the password")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    stranger
        .try_login(&owner.email, "not the password")
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "login_rate_limited");

    let signed_in = from_address(&app, [127, 0, 0, 77]).try_login(&owner.email, &owner.password).await;

    assert_eq!(signed_in.status, StatusCode::OK, "the owner, from their own client, signs in: {signed_in:?}");
}

#[tokio::test]
async fn logins_from_one_ip_are_rate_limited_across_addresses() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = crate::helpers::monolith_config(data.path());
    config.auth.login_attempts_per_ip_per_minute = 3;
    let app = TestApp::monolith_with(config, data).await;
    for n in 0..3 {
        app.try_login(&format!("user{n}@example.jp"), "whatever password").await;
    }

    let limited = app.try_login("user9@example.jp", "whatever password").await;

    limited.assert_problem(StatusCode::TOO_MANY_REQUESTS, "login_rate_limited");
}

#[tokio::test]
async fn data_survives_a_restart_of_the_monolith() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = crate::helpers::monolith_config(data.path());
    let _namespaces = crate::helpers::ServerNamespaces::of(&config);
    let (base_url, stop) = crate::helpers::start_in_process(config.clone()).await;
    let first = TestApp::new(base_url, data.path().to_owned(), None);
    let user = first.register().await;
    drop(stop);
    // Wait for the first process to let go of its port and databases.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let (base_url, _stop) = crate::helpers::start_in_process(config).await;
    let second = TestApp::new(base_url, data.path().to_owned(), None);
    let session = second.login(&user).await;

    let reply = second.get(&format!("/api/users/{}", user.id), &session.access_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}
