//! `omnidesk up`: the supervisor and the gateway in front of real child processes.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{TestApp, Topology};

#[tokio::test]
async fn a_killed_service_answers_503_through_the_gateway_and_is_restarted() {
    let topology = Topology::spawn("microservices", &[]);
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);
    let user = app.register().await;
    let old_pid = topology.pid_of("user");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old_pid), nix::sys::signal::Signal::SIGKILL).expect("kill");

    // While the user process is down, the gateway answers for it.
    let mut saw_unavailable = false;
    for _ in 0..100 {
        let reply = app.try_login(&user.email, &user.password).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
            saw_unavailable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(saw_unavailable, "the gateway never reported the user service unavailable");

    // The supervisor brings it back, with the data it had.
    let mut restarted = false;
    for _ in 0..300 {
        if app.try_login(&user.email, &user.password).await.status == StatusCode::OK {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restarted, "the user service did not come back");
    assert_ne!(topology.pid_of("user"), old_pid);
}

#[tokio::test]
async fn the_groups_topology_serves_the_same_api() {
    let topology = Topology::spawn(
        "groups",
        &[(
            "OMNIDESK_TOPOLOGY__GROUPS",
            r#"[["user", "plan", "payment"], ["inbox", "input"], ["integration", "batch"]]"#,
        )],
    );
    let app = TestApp::new(topology.base_url.clone(), topology.data_dir.clone(), None);

    let (user, session) = app.signed_in().await;
    let reply = app.get(&format!("/api/users/{}", user.id), &session.access_token).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["account"]["plan"]["code"], "free");
    let groups = topology.state()["groups"].as_array().expect("groups").len();
    assert_eq!(groups, 3, "the three configured groups");
}
