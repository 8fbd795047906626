//! The `omnidesk` command line, run as a user would.

use std::process::{Command, Output};

fn omnidesk(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omnidesk"));
    command.args(args).current_dir(dir).env_remove("OMNIDESK_CONFIG").env("RUST_BACKTRACE", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn migrate_creates_every_namespace_and_is_repeatable() {
    let dir = tempfile::tempdir().expect("tempdir");

    let first = omnidesk(&["migrate", "--data-dir", "state"], &[], dir.path());
    let again = omnidesk(&["migrate", "--data-dir", "state", "--service", "user"], &[], dir.path());

    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("migrated user: sqlite://state/user.db"), "{}", text(&first.stdout));
    assert!(dir.path().join("state/user.db").exists());
    assert!(again.status.success(), "{}", text(&again.stderr));
}

#[test]
fn reading_commands_where_there_is_no_data_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");

    let failed = omnidesk(&["events", "failed"], &[], dir.path());
    let replay = omnidesk(&["events", "replay"], &[], dir.path());

    for output in [&failed, &replay] {
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stderr).contains("no OmniDesk data under data"), "{}", text(&output.stderr));
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn migrate_refuses_an_unknown_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = omnidesk(&["migrate", "--service", "billing"], &[], dir.path());
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("unknown service `billing`"), "{}", text(&output.stderr));
}

#[test]
fn config_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = omnidesk(
        &["config"],
        &[
            ("OMNIDESK_INTERNAL__SECRET", "hunter2"),
            ("RABBIT_MQ_PASSWORD", "hunter3"),
            ("DATABASE_MODE", "distributed"),
        ],
        dir.path(),
    );
    let shown = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!shown.contains("hunter"), "{shown}");
    assert!(shown.contains(r#"mode = "distributed""#), "{shown}");
}

#[test]
fn config_example_prints_the_shipped_commented_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = omnidesk(&["config", "--example"], &[], dir.path());
    assert_eq!(text(&output.stdout), kernel::config::EXAMPLE);
}

#[test]
fn an_invalid_configuration_file_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("omnidesk.toml"), "[http]\nbody_limit_bytes = \"lots\"\n").expect("write");

    let output = omnidesk(&["serve", "--listen", "127.0.0.1:0"], &[], dir.path());

    assert!(!output.status.success());
    let error = text(&output.stderr);
    assert!(error.contains("http.body_limit_bytes"), "{error}");
}

#[test]
fn a_service_whose_callee_has_no_address_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = omnidesk(&["serve", "--services", "user", "--listen", "127.0.0.1:0"], &[], dir.path());
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("services.plan.url"), "{}", text(&output.stderr));
}

#[test]
fn events_failed_and_replay_report_on_every_namespace() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(omnidesk(&["migrate", "--data-dir", "state"], &[], dir.path()).status.success());

    let failed = omnidesk(&["events", "failed", "--data-dir", "state"], &[], dir.path());
    let replay = omnidesk(&["events", "replay", "--data-dir", "state"], &[], dir.path());

    assert!(failed.status.success(), "{}", text(&failed.stderr));
    assert!(text(&failed.stderr).contains("0 dead-lettered event(s)"), "{}", text(&failed.stderr));
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    assert!(text(&replay.stderr).contains("0 dead letter(s) marked for replay"), "{}", text(&replay.stderr));
}

#[test]
fn plan_token_refuses_an_unknown_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let account = "01a21ee3-de6f-7784-817f-36a77daecbc3";

    let output =
        omnidesk(&["plan-token", "--account", account, "--plan", "gold", "--data-dir", "state"], &[], dir.path());

    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("invalid value 'gold'"), "{stderr}");
    assert!(stderr.contains("[possible values: free, starter, pro, business]"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "nothing was created");
}
