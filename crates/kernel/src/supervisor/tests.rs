//! The supervisor's pure parts; `up` itself needs the binary and is covered by the black-box suite.

use super::*;
use crate::service::ServiceSpec;

static SERVICES: [ServiceSpec; 3] = [
    ServiceSpec::without_features("user", "accounts", &["/api/users"]),
    ServiceSpec::without_features("plan", "plans", &["/api/plan"]),
    ServiceSpec::without_features("inbox", "conversations", &["/api/conversations"]),
];

fn groups(spec: &[&[&str]]) -> Vec<Vec<String>> {
    spec.iter().map(|group| group.iter().map(|s| (*s).to_owned()).collect()).collect()
}

#[test]
fn a_monolith_is_one_group_with_every_service() {
    let groups = groups_for(TopologyMode::Monolith, &[], &SERVICES).expect("groups");

    assert_eq!(groups, vec![vec!["user", "plan", "inbox"]]);
}

#[test]
fn microservices_are_one_group_per_service() {
    let groups = groups_for(TopologyMode::Microservices, &[], &SERVICES).expect("groups");

    assert_eq!(groups, vec![vec!["user"], vec!["plan"], vec!["inbox"]]);
}

#[test]
fn configured_groups_are_kept_in_their_order() {
    let configured = groups(&[&["inbox"], &["user", "plan"]]);

    let groups = groups_for(TopologyMode::Groups, &configured, &SERVICES).expect("groups");

    assert_eq!(groups, vec![vec!["inbox"], vec!["user", "plan"]]);
}

#[test]
fn groups_mode_without_groups_is_an_error_naming_the_key() {
    let error = groups_for(TopologyMode::Groups, &[], &SERVICES).expect_err("no groups");

    assert!(error.to_string().contains("topology.groups"), "{error}");
}

#[test]
fn configured_groups_must_name_every_known_service_exactly_once() {
    for (configured, complaint) in [
        (groups(&[&["user", "plan"], &["inbox", "billing"]]), "unknown service `billing`"),
        (groups(&[&["user", "plan"], &["plan", "inbox"]]), "`plan` is in two groups"),
        (groups(&[&["user", "plan"]]), "`inbox` is in no group"),
        (groups(&[&["user", "plan", "inbox"], &[]]), "empty group"),
    ] {
        let error = groups_for(TopologyMode::Groups, &configured, &SERVICES).expect_err(complaint);
        let message = error.to_string();
        assert!(message.contains("topology.groups") && message.contains(complaint), "{message}");
    }
}

#[test]
fn children_learn_where_every_service_lives_and_the_shared_secret() {
    let groups = vec![
        Group { name: "user+plan".to_owned(), services: vec!["user", "plan"], port: 4101 },
        Group { name: "inbox".to_owned(), services: vec!["inbox"], port: 4102 },
    ];

    let env: HashMap<String, String> = child_environment(&groups, "s3cr\"et").into_iter().collect();

    assert_eq!(env["OMNIDESK_SERVICES__USER__URL"], "http://127.0.0.1:4101");
    assert_eq!(env["OMNIDESK_SERVICES__PLAN__URL"], "http://127.0.0.1:4101");
    assert_eq!(env["OMNIDESK_SERVICES__INBOX__URL"], "http://127.0.0.1:4102");
    assert_eq!(env["OMNIDESK_INTERNAL__SECRET"], r#""s3cr\"et""#);
    assert_eq!(env["OMNIDESK_HTTP__TRUSTED_PROXIES"], r#"["127.0.0.1"]"#);
    assert_eq!(env[PARENT_PID_VAR], std::process::id().to_string());
}

#[test]
fn the_environment_a_child_gets_loads_as_its_configuration() {
    let groups = vec![Group { name: "user".to_owned(), services: vec!["user"], port: 4103 }];
    let secret = generate_secret();
    let env = child_environment(&groups, &secret);

    figment::Jail::expect_with(|jail| {
        for (key, value) in &env {
            if key != PARENT_PID_VAR {
                jail.set_env(key, value);
            }
        }
        let config = Config::load(None).expect("the child's configuration loads");
        assert_eq!(config.internal.secret.as_deref(), Some(secret.as_str()));
        assert_eq!(config.service("user").url.as_deref(), Some("http://127.0.0.1:4103"));
        assert_eq!(config.http.trusted_proxies, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
        Ok(())
    });
}

#[test]
fn generated_secrets_are_long_and_fresh() {
    let (a, b) = (generate_secret(), generate_secret());

    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn the_restart_backoff_resets_once_a_child_has_run_long_enough() {
    let long_ago = Instant::now().checked_sub(STABLE_AFTER + Duration::from_secs(1));

    assert_eq!(backoff_after(Instant::now(), MAX_BACKOFF), MAX_BACKOFF);
    if let Some(long_ago) = long_ago {
        assert_eq!(backoff_after(long_ago, MAX_BACKOFF), INITIAL_BACKOFF);
    }
}

#[test]
fn the_state_file_is_replaced_whole_and_removed_at_the_end() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state = StateFile {
        path: dir.path().join("up.json"),
        state: Mutex::new(UpState {
            gateway: "http://127.0.0.1:8080".to_owned(),
            pid: 1,
            groups: vec![GroupState { services: vec!["user"], url: "http://127.0.0.1:4101".to_owned(), pid: 10 }],
        }),
    };

    state.write();
    state.set_pid(0, 11);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state.path).expect("the state file exists")).expect("json");
    state.remove();

    assert_eq!(
        written,
        serde_json::json!({
            "gateway": "http://127.0.0.1:8080",
            "pid": 1,
            "groups": [{ "services": ["user"], "url": "http://127.0.0.1:4101", "pid": 11 }],
        })
    );
    assert!(!state.path.exists());
}

/// Runs `parent_gone` for at most `limit` with `OMNIDESK_PARENT_PID` set to `pid`, and says whether it
/// resolved. The variable is process-wide, so it is set inside figment's jail, which serialises the tests that
/// change the environment and restores it afterwards.
fn parent_gone_within(pid: u32, limit: Duration) -> bool {
    let mut resolved = false;
    figment::Jail::expect_with(|jail| {
        jail.set_env(PARENT_PID_VAR, pid);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        // The timer must be created inside the runtime, so the timeout is built in the async block.
        resolved = runtime.block_on(async { tokio::time::timeout(limit, parent_gone()).await.is_ok() });
        Ok(())
    });
    resolved
}

#[test]
fn parent_gone_waits_while_the_parent_is_the_expected_one() {
    let parent = std::os::unix::process::parent_id();

    assert!(!parent_gone_within(parent, Duration::from_millis(1200)), "resolved although the parent is alive");
}

#[test]
fn parent_gone_resolves_once_the_parent_is_another_process() {
    // Our own pid is never our parent's, which is what a re-parented orphan sees.
    let not_our_parent = std::process::id();

    assert!(parent_gone_within(not_our_parent, Duration::from_secs(5)), "did not notice the parent was gone");
}
