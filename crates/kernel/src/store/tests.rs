use std::path::Path;

use super::sqlite::CHECKPOINT_EVERY;
use super::*;
use crate::args;

/// A migrated fixture namespace on `engine`, and what removes it.
async fn scratch(engine: Engine) -> (Namespace, Box<dyn std::any::Any>) {
    let scratch = crate::testing::Scratch::open_on(engine, "fixture", TEST_MIGRATIONS).await;
    (scratch.namespace.clone(), Box::new(scratch))
}

/// Declares `$name` once per engine (`$name::sqlite`, `$name::postgres`, `$name::mysql`), each given a fresh namespace.
macro_rules! on_every_engine {
    ($(async fn $name:ident($namespace:ident) $body:block)*) => {$(
        mod $name {
            use super::*;

            async fn check($namespace: Namespace) $body

            #[tokio::test]
            async fn sqlite() {
                let (namespace, _cleanup) = scratch(Engine::Sqlite).await;
                check(namespace).await;
            }

            #[tokio::test]
            async fn postgres() {
                let (namespace, _cleanup) = scratch(Engine::Postgres).await;
                check(namespace).await;
            }

            #[tokio::test]
            async fn mysql() {
                let (namespace, _cleanup) = scratch(Engine::MySql).await;
                check(namespace).await;
            }
        }
    )*};
}

async fn fixture(dir: &Path) -> Namespace {
    let location = Location::default_for(dir, "fixture");
    let namespace = Namespace::open("fixture", &location, Some(TEST_MIGRATIONS)).await.expect("opens");
    namespace.migrate().await.expect("migrates");
    namespace
}

#[tokio::test]
async fn a_namespace_is_one_wal_file_with_its_own_migration_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let namespace = fixture(dir.path()).await;

    namespace.readiness().await.expect("ready after migrating");
    let backend = namespace.backend();
    let Pool::Sqlite(pool) = &backend.pool else { panic!("a SQLite namespace") };
    let mode: String = sqlx::query_scalar("pragma journal_mode").fetch_one(pool).await.expect("pragma");
    assert_eq!(mode, "wal");
    assert!(dir.path().join("fixture.db").exists());
}

#[tokio::test]
async fn a_fresh_namespace_is_not_ready_until_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::default_for(dir.path(), "fixture");
    let namespace = Namespace::open("fixture", &location, Some(TEST_MIGRATIONS)).await.expect("opens");

    assert!(namespace.readiness().await.is_err());
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_without_waiting_for_the_wal_to_fill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let namespace = fixture(dir.path()).await;
    let file = dir.path().join("fixture.db");
    let size_before = std::fs::metadata(&file).expect("database file").len();

    // About 2 MiB: far below the automatic checkpoint's threshold, so only the background checkpoint
    // moves these pages from the WAL into the database file.
    let mut tx = namespace.begin().await.expect("begin");
    for i in 0..512 {
        let name = format!("{i:04}{}", "x".repeat(4_000));
        tx.execute("insert into things (id, name) values (?, ?)", args![format!("t{i}"), name]).await.expect("insert");
    }
    tx.commit().await.expect("commit");

    let mut size = size_before;
    for _ in 0..100 {
        size = std::fs::metadata(&file).expect("database file").len();
        if size > size_before + (1 << 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(size > size_before + (1 << 20), "the database file stayed at {size} bytes (from {size_before})");
}

#[tokio::test]
async fn under_steady_writes_the_wal_starts_over_instead_of_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let namespace = fixture(dir.path()).await;
    let wal = dir.path().join("fixture.db-wal");

    // Forty checkpoint rounds of back-to-back writes, each transaction replacing one 4 KB row (a few pages
    // appended to the WAL per commit, the database staying small).
    let started = std::time::Instant::now();
    let mut transactions = 0;
    let mut largest: u64 = 0;
    while started.elapsed() < CHECKPOINT_EVERY * 40 {
        let mut tx = namespace.begin().await.expect("begin");
        tx.execute("delete from things", args![]).await.expect("delete");
        let name = format!("{transactions}{}", "x".repeat(4_000));
        tx.execute("insert into things (id, name) values (?, ?)", args!["t", name]).await.expect("insert");
        tx.commit().await.expect("commit");
        transactions += 1;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }

    // A WAL that never starts over grows until the automatic checkpoint's threshold (64 MiB) makes the
    // writer checkpoint it inside a commit; one that starts over every round stays near a round's worth.
    assert!(largest < 32 << 20, "the WAL grew to {largest} bytes over {transactions} transactions");
}

on_every_engine! {
    async fn sql_naming_a_table_the_service_does_not_own_is_refused(namespace) {

        let error = namespace.execute("delete from users where id = ?", args!["u1"]).await.expect_err("refused");

        assert!(matches!(error, StoreError::ForeignTable { ref table, .. } if table == "users"), "{error}");
    }

    async fn a_duplicate_is_reported_as_a_unique_violation(namespace) {
        namespace.execute("insert into things (id, name) values (?, ?)", args!["1", "a"]).await.expect("insert");

        let error = namespace
            .execute("insert into things (id, name) values (?, ?)", args!["2", "a"])
            .await
            .expect_err("duplicate name");

        assert!(matches!(error, StoreError::UniqueViolation { .. }), "{error}");
    }

    async fn a_transaction_dropped_without_commit_leaves_nothing(namespace) {
        {
            let mut tx = namespace.begin().await.expect("begin");
            tx.execute("insert into things (id, name) values (?, ?)", args!["1", "a"]).await.expect("insert");
        }
        let rows: Vec<(String,)> = namespace.fetch_all("select id from things", args![]).await.expect("select");
        assert!(rows.is_empty());
    }

    async fn ids_are_bound_and_read_as_typed_columns_and_bad_stored_text_is_an_error_not_a_default(namespace) {
        let id = crate::auth::UserId::new();
        namespace.execute("insert into things (id, name) values (?, ?)", args![id, "typed"]).await.expect("bound");
        namespace.execute("insert into things (id, name) values (?, ?)", args!["not-a-uuid", "broken"]).await.expect("raw");

        let read: Vec<(crate::auth::UserId,)> =
            namespace.fetch_all("select id from things where name = ?", args!["typed"]).await.expect("read");
        let broken =
            namespace.fetch_all::<(crate::auth::UserId,)>("select id from things where name = ?", args!["broken"]).await;

        assert_eq!(read, [(id,)]);
        let error = broken.expect_err("text that is no id is refused when read").to_string();
        assert!(error.contains("not-a-uuid"), "{error}");
    }

    async fn a_null_binds_as_its_column_type_and_set_based_statements_read_their_rows(namespace) {
        let rows = [("1", "a", Some(3_i64)), ("2", "b", None)];
        namespace
            .execute(
                "insert into things (id, name, count) select value ->> 0, value ->> 1, cast(value ->> 2 as bigint) \
                 from jsonb_each(?) order by key",
                args![json_rows(&rows).expect("JSON")],
            )
            .await
            .expect("set-based insert");
        namespace.execute("update things set count = ? where id = ?", args![None::<i64>, "1"]).await.expect("a typed null");

        let read: Vec<(String, Option<i64>)> =
            namespace.fetch_all("select name, count from things order by id", args![]).await.expect("read");

        assert_eq!(read, [("a".to_owned(), None), ("b".to_owned(), None)]);
    }

    async fn write_transactions_of_one_namespace_run_one_after_another(namespace) {
        let first = namespace.begin().await.expect("begin");
        let other = namespace.clone();
        let second = tokio::spawn(async move {
            let mut tx = other.begin().await.expect("begin");
            tx.execute("insert into things (id, name) values (?, ?)", args!["2", "second"]).await.expect("insert");
            tx.commit().await.expect("commit");
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "the second transaction waits for the first");
        let mut first = first;
        first.execute("insert into things (id, name) values (?, ?)", args!["1", "first"]).await.expect("insert");
        first.commit().await.expect("commit");
        second.await.expect("second");
        let rows: Vec<(String,)> = namespace.fetch_all("select name from things order by id", args![]).await.expect("read");
        assert_eq!(rows, [("first".to_owned(),), ("second".to_owned(),)]);
    }
}

/// Fills a fixture namespace with rows of every kind: more samples than a copy's batch, nulls, reals,
/// booleans, bytes, Japanese text, a child table with a composite key.
async fn fill(namespace: &Namespace, samples: i64) {
    let mut tx = namespace.begin().await.expect("begin");
    tx.execute("insert into things (id, name, count) values (?, ?, ?)", args!["t1", "返品したいです", 3_i64])
        .await
        .expect("thing");
    tx.execute(
        "insert into things (id, name, count) values (?, ?, ?)",
        args!["t2", "tab\there\nline \\ back\r", Value::Null(Kind::Int)],
    )
    .await
    .expect("thing");
    for i in 1..=samples {
        let amount = if i % 7 == 0 { Value::Null(Kind::Real) } else { Value::Real(i as f64 * 0.25) };
        let payload = if i % 5 == 0 { Value::Null(Kind::Bytes) } else { Value::Bytes(vec![0, 255, (i % 256) as u8]) };
        tx.execute(
            "insert into samples (seq, label, amount, flag, payload) values (?, ?, ?, ?, ?)",
            args![i, format!("お問い合わせ {i} — naïve"), amount, i % 2 == 0, payload],
        )
        .await
        .expect("sample");
        if i <= 50 {
            for tag in ["至急", "vip"] {
                tx.execute("insert into sample_tags (sample_seq, tag) values (?, ?)", args![i, tag])
                    .await
                    .expect("tag");
            }
        }
    }
    tx.commit().await.expect("commit");
}

/// Kills the copy it watches once that many rows are copied (when it is told a number).
struct Counting(Option<u64>);

impl transfer::Progress for Counting {
    fn start(&mut self, _tables: &[(String, u64)]) {}
    fn copied(&mut self, _table: &str, rows: u64) {
        if let Some(left) = &mut self.0 {
            *left = left.saturating_sub(rows);
            assert!(*left > 0, "the copy is killed here");
        }
    }
}

/// A copy from `from` to `to`, interrupted part way and run again, equals its source; a row changed at
/// the target is then found and named.
async fn copies_between(from: Engine, to: Engine) {
    let (source, _source_cleanup) = scratch(from).await;
    let (target, _target_cleanup) = scratch(to).await;
    fill(&source, 4_500).await;
    let tables = transfer::common_tables(&source, &target, &[]).await.expect("same tables");
    assert_eq!(
        tables
            .iter()
            .map(|(t, _)| t.name.as_str())
            .collect::<Vec<_>>()
            .iter()
            .filter(|n| n.starts_with("sample"))
            .count(),
        2
    );

    // The target's indexes (and PostgreSQL's keys and foreign keys) are dropped for the copy, recorded.
    let names: Vec<&str> = tables.iter().map(|(_, t)| t.name.as_str()).collect();
    let secondary = transfer::deferrable(&target, &names).await.expect("catalogue");
    let named = |wanted: &[&str]| wanted.iter().all(|w| secondary.iter().any(|d| format!("{d:?}").contains(w)));
    match to {
        Engine::Sqlite => assert!(named(&["samples_by_label", "sample_tags_by_tag"]), "{secondary:?}"),
        Engine::Postgres => assert!(
            named(&["samples_by_label", "sample_tags_by_tag", "samples_pkey", "sample_tags_sample_seq_fkey"]),
            "{secondary:?}"
        ),
        Engine::MySql => assert!(secondary.is_empty()),
    }
    let expected = secondary.len();
    assert_eq!(transfer::defer_indexes(&target, &names).await.expect("defers"), expected);
    assert!(transfer::deferrable(&target, &names).await.expect("catalogue").is_empty());

    // The first run dies after its first batch (as a killed command would, between two commits), before
    // the indexes are built again.
    let interrupted = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(transfer::copy(
        &source,
        &target,
        &tables,
        &mut Counting(Some(2_000)),
    )))
    .await;
    assert!(interrupted.is_err(), "the first run died");
    // The rerun defers again (nothing is left to drop) and builds everything the first run dropped.
    assert_eq!(transfer::defer_indexes(&target, &names).await.expect("defers"), 0);
    let rerun = transfer::copy(&source, &target, &tables, &mut Counting(None)).await.expect("copies");
    assert!(rerun.resumed >= 2_000, "the rerun continued where the first stopped: {rerun:?}");
    assert_eq!(transfer::restore_indexes(&target).await.expect("restores"), expected);
    assert_eq!(transfer::deferrable(&target, &names).await.expect("catalogue"), secondary);
    transfer::finish(&target).await.expect("finishes");

    let compared = transfer::compare(&source, &target, &tables).await.expect("compares");
    for table in &compared {
        assert!(table.matches(), "{} differs: {table:?}", table.table);
    }
    let samples = compared.iter().find(|t| t.table == "samples").expect("samples compared");
    assert_eq!(samples.source.rows, 4_500);

    // The target's generated keys continue after the copied ones.
    target
        .execute("insert into samples (label, flag) values (?, ?)", args!["new", true])
        .await
        .expect("a generated key after the copied rows");
    target.execute("delete from samples where label = ?", args!["new"]).await.expect("delete");

    target.execute("update samples set label = ? where seq = ?", args!["changed", 4_321_i64]).await.expect("corrupt");
    let compared = transfer::compare(&source, &target, &tables).await.expect("compares");
    let differing: Vec<_> = compared.iter().filter(|t| !t.matches()).collect();
    assert_eq!(differing.len(), 1, "{compared:?}");
    assert_eq!(differing[0].table, "samples");
    assert_eq!(differing[0].source.rows, differing[0].target.rows);
    assert!(
        differing[0].differing.iter().any(|d| d.contains("4321") && d.contains("different")),
        "{:?}",
        differing[0].differing
    );
}

mod transfers {
    use super::*;

    #[tokio::test]
    async fn sqlite_to_postgres() {
        copies_between(Engine::Sqlite, Engine::Postgres).await;
    }

    #[tokio::test]
    async fn sqlite_to_mysql() {
        copies_between(Engine::Sqlite, Engine::MySql).await;
    }

    #[tokio::test]
    async fn postgres_to_mysql() {
        copies_between(Engine::Postgres, Engine::MySql).await;
    }

    #[tokio::test]
    async fn mysql_to_sqlite() {
        copies_between(Engine::MySql, Engine::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres_to_postgres() {
        copies_between(Engine::Postgres, Engine::Postgres).await;
    }
}

on_every_engine! {
    async fn a_move_holds_writes_and_a_switched_copy_refuses_them_until_the_namespace_follows(namespace) {
        namespace.execute("insert into things (id, name) values (?, ?)", args!["before", "a"]).await.expect("open");

        moves::hold_writes(&namespace, true);
        let error = namespace.execute("insert into things (id, name) values (?, ?)", args!["x", "x"]).await;
        assert!(matches!(error, Err(StoreError::Moving)), "{error:?}");
        assert!(namespace.begin_as(Writer::Kernel).await.is_ok(), "draining lets the event bus's bookkeeping through");
        moves::hold_writes(&namespace, false);
        assert!(matches!(namespace.begin_as(Writer::Kernel).await, Err(StoreError::Moving)));
        let read: Vec<(String,)> = namespace.fetch_all("select id from things", args![]).await.expect("reads go on");
        assert_eq!(read.len(), 1);

        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = Location::default_for(dir.path(), "fixture");
        // The command recording the move writes through a namespace of its own, whose gate is open.
        moves::open_gate(&namespace);
        let record = moves::start(&namespace, &elsewhere.url()).await.expect("a move recorded");
        assert!(record.holds_writes());
        moves::lock_for_switch(&namespace).await.expect("the write lock").switch(&record.id).await.expect("switched");
        // Whatever the gate says, the moved copy itself refuses writes: a process that has not heard yet
        // cannot write to it.
        moves::open_gate(&namespace);
        let error = namespace.execute("insert into things (id, name) values (?, ?)", args!["late", "late"]).await;
        assert!(matches!(error, Err(StoreError::Moved)), "{error:?}");

        let clone = namespace.clone();
        assert_eq!(moves::settle(&namespace).await.expect("follows the record"), elsewhere);
        clone.execute("insert into things (id, name) values (?, ?)", args!["after", "b"]).await.expect("writes at the target");
        let there: Vec<(String,)> = clone.fetch_all("select id from things", args![]).await.expect("read");
        assert_eq!(there, [("after".to_owned(),)]);
    }
}
