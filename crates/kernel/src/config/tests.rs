use super::*;
use figment::Jail;

const SERVICES: &[&str] = &["user", "plan", "payment", "inbox", "input", "integration", "batch"];

#[test]
fn the_shipped_example_is_valid_and_equals_the_defaults_it_documents() {
    Jail::expect_with(|jail| {
        jail.create_file("omnidesk.toml", EXAMPLE)?;
        let config = Config::load(None).expect("the example loads");
        config.validate(SERVICES).expect("the example validates");
        let mut expected = Config::default();
        expected.topology.groups = config.topology.groups.clone();
        assert_eq!(config, expected);
        Ok(())
    });
}

#[test]
fn the_seed_variables_keep_their_names_and_meaning() {
    Jail::expect_with(|jail| {
        jail.set_env("ENVIRONMENT", "production");
        jail.set_env("DATABASE_MODE", "distributed");
        jail.set_env("REDIS_MODE", "cluster");
        jail.set_env("RABBIT_MQ_USER", "omni");
        jail.set_env("RABBIT_MQ_PASSWORD", "s3cret");
        jail.set_env("RABBIT_MQ_HOST", "rabbit");
        jail.set_env("RABBIT_MQ_AMQP_PORT", "5673");
        jail.set_env("OMNIDESK_DATA_DIR", "/var/lib/omnidesk");
        jail.set_env("PORT", "9000");
        let config = Config::load(None).expect("loads");
        assert_eq!(config.environment, Environment::Production);
        assert_eq!(config.data.mode, DatabaseMode::Distributed);
        assert_eq!(config.redis.mode, RedisMode::Cluster);
        assert_eq!(config.rabbitmq.amqp_url().as_deref(), Some("amqp://omni:s3cret@rabbit:5673/"));
        assert_eq!(config.data.dir, PathBuf::from("/var/lib/omnidesk"));
        assert_eq!(config.http.listen, "127.0.0.1:9000".parse().expect("addr"));
        Ok(())
    });
}

#[test]
fn an_invalid_value_is_reported_with_its_key() {
    Jail::expect_with(|jail| {
        jail.set_env("DATABASE_MODE", "sharded");
        let error = Config::load(None).expect_err("sharded is not a mode").to_string();
        assert!(
            error.contains("`DATABASE_MODE` (data.mode): expected `monolithic` or `distributed`, found `sharded`"),
            "named by the variable that set it, the choices quoted once: {error}"
        );
        jail.set_env("DATABASE_MODE", "monolithic");
        jail.set_env("OMNIDESK_TOPOLOGY__MODE", "everywhere");
        let error = Config::load(None).expect_err("not a topology").to_string();
        assert!(error.contains("`OMNIDESK_TOPOLOGY__MODE` (topology.mode): expected"), "{error}");
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_the_file_is_reported_with_its_name() {
    Jail::expect_with(|jail| {
        jail.create_file("omnidesk.toml", "[http]\nlisten_on = \"0.0.0.0:1\"\n")?;
        let error = Config::load(None).expect_err("typo").to_string();
        assert!(error.contains("listen_on"), "{error}");
        Ok(())
    });
}

#[test]
fn nested_keys_come_from_prefixed_variables() {
    Jail::expect_with(|jail| {
        jail.set_env("OMNIDESK_SERVICES__PLAN__URL", "http://plan:8080");
        jail.set_env("OMNIDESK_HTTP__BODY_LIMIT_BYTES", "2048");
        let config = Config::load(None).expect("loads");
        assert_eq!(config.service("plan").url.as_deref(), Some("http://plan:8080"));
        assert_eq!(config.http.body_limit_bytes, 2048);
        Ok(())
    });
}

#[test]
fn groups_must_cover_every_service_once() {
    let mut config = Config::default();
    config.topology.mode = TopologyMode::Groups;
    config.topology.groups = vec![vec!["user".into(), "plan".into()], vec!["plan".into()]];
    let error = config.validate(SERVICES).expect_err("plan twice").to_string();
    assert!(error.contains("topology.groups") && error.contains("plan"), "{error}");

    config.topology.groups = vec![vec!["user".into()]];
    let error = config.validate(SERVICES).expect_err("others missing").to_string();
    assert!(error.contains("in no group"), "{error}");
}

#[test]
fn secrets_are_redacted_when_printed() {
    let mut config = Config::default();
    config.internal.secret = Some("hunter2-internal".into());
    config.rabbitmq.password = Some("hunter2-rabbit".into());
    config.services.insert(
        "user".into(),
        ServiceConfig {
            url: None,
            database_url: Some("postgres://omni:hunter2-db@db/omni".into()),
            settings: [("stripe_secret_key".to_owned(), "hunter2-stripe".to_owned())].into(),
        },
    );
    let shown = config.redacted_toml();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("postgres://omni:<redacted>@db/omni"), "{shown}");
}

#[test]
fn numeric_and_boolean_service_settings_are_kept_as_text() {
    Jail::expect_with(|jail| {
        jail.create_file("omnidesk.toml", "[services.input.settings]\ndelivery_max_attempts = 8\nstrict = true\n")?;
        jail.set_env("OMNIDESK_SERVICES__INPUT__SETTINGS__DELIVERY_RETRY_BASE_MS", "50");
        let config = Config::load(None).expect("loads");
        let settings = &config.service("input").settings;
        assert_eq!(settings.get("delivery_retry_base_ms").map(String::as_str), Some("50"));
        assert_eq!(settings.get("delivery_max_attempts").map(String::as_str), Some("8"));
        assert_eq!(settings.get("strict").map(String::as_str), Some("true"));
        Ok(())
    });
}

#[test]
fn redis_settings_are_refused_while_nothing_uses_redis() {
    let mut cluster = Config::default();
    cluster.redis.mode = RedisMode::Cluster;
    let mut with_url = Config::default();
    with_url.redis.url = Some("redis://127.0.0.1:6379".to_owned());

    let cluster = cluster.validate(&[]).expect_err("refused").to_string();
    let with_url = with_url.validate(&[]).expect_err("refused").to_string();

    assert!(cluster.contains("REDIS_MODE") && cluster.contains("not supported"), "{cluster}");
    assert!(with_url.contains("redis.url") && with_url.contains("not supported"), "{with_url}");
    Config::default().validate(&[]).expect("single without a url is the default");
}
