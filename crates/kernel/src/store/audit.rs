//! The namespace-ownership check: a service's SQL may only name tables its own migrations create.
//!
//! Used two ways: every statement a [`Namespace`](super::Namespace) runs is checked in debug builds, and
//! the workspace test `every_sql_statement_in_a_service_names_only_its_own_tables`
//! (`crates/omnidesk/tests/architecture.rs`) checks every SQL literal in every service crate's source, so
//! a statement that no test executes is still caught.
//!
//! FTS5 virtual tables a migration creates count as created (their module arguments are not parsed), and
//! SQLite's table-valued JSON functions (`jsonb_each`, which the set-based statements read their rows
//! from) are functions, not tables: anyone may use them.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Statement, visit_relations};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlx::migrate::Migrator;

use super::{Engine, MIGRATIONS_TABLE, StoreError};

/// The parser's dialect for text written for `engine`.
fn dialect(engine: Engine) -> &'static dyn Dialect {
    match engine {
        Engine::Sqlite => &SQLiteDialect {},
        Engine::Postgres => &PostgreSqlDialect {},
        Engine::MySql => &MySqlDialect {},
    }
}

/// The tables (and views) the given migrations create, lowercased.
pub fn tables_created(migrator: &Migrator, engine: Engine) -> Result<HashSet<String>, String> {
    let mut tables = HashSet::new();
    for migration in migrator.iter() {
        let (sql, virtual_tables) = split_virtual_tables(migration.sql.as_str());
        tables.extend(virtual_tables);
        let statements = Parser::parse_sql(dialect(engine), &sql)
            .map_err(|e| format!("migration {} ({}): {e}", migration.version, migration.description))?;
        for statement in statements {
            match statement {
                Statement::CreateTable(create) => {
                    tables.insert(last_ident(&create.name.to_string()));
                }
                Statement::CreateView(create) => {
                    tables.insert(last_ident(&create.name.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(tables)
}

/// Takes `create virtual table` statements (FTS5 indexes, whose module arguments are not SQL the parser
/// knows) out of a migration: returns the rest of the migration and the virtual tables' names.
fn split_virtual_tables(sql: &str) -> (String, Vec<String>) {
    // Comments go first: they may contain semicolons.
    let code: String =
        sql.lines().map(|line| line.split_once("--").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n");
    let mut rest = String::with_capacity(code.len());
    let mut names = Vec::new();
    for statement in code.split_inclusive(';') {
        let lower = statement.to_lowercase();
        let mut words = lower.split_whitespace();
        if let (Some("create"), Some("virtual"), Some("table")) = (words.next(), words.next(), words.next()) {
            let name = words.find(|w| !matches!(*w, "if" | "not" | "exists")).unwrap_or_default();
            names.push(last_ident(name.split('(').next().unwrap_or(name)));
        } else {
            rest.push_str(statement);
        }
    }
    (rest, names)
}

/// Every table or view a statement reads or writes, lowercased, without schema qualifiers.
pub fn tables_touched(sql: &str, engine: Engine) -> Result<Vec<String>, String> {
    let statements = Parser::parse_sql(dialect(engine), sql).map_err(|e| format!("{e} in `{sql}`"))?;
    let mut ctes = HashSet::new();
    for statement in &statements {
        if let Statement::Query(query) = statement
            && let Some(with) = &query.with
        {
            ctes.extend(with.cte_tables.iter().map(|cte| cte.alias.name.value.to_lowercase()));
        }
    }
    let mut tables = Vec::new();
    let _ = visit_relations(&statements, |relation| {
        let name = last_ident(&relation.to_string());
        if !ctes.contains(&name) && !tables.contains(&name) {
            tables.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(tables)
}

/// Built-in table-valued functions (SQLite's, PostgreSQL's): they read their arguments, not a table, so
/// anyone may use them (the set-based statements pass rows as one JSON array to `jsonb_each`).
const TABLE_VALUED_FUNCTIONS: &[&str] =
    &["json_each", "json_tree", "jsonb_each", "jsonb_tree", "jsonb_array_elements", "json_array_elements"];

/// Fails with [`StoreError::ForeignTable`] if `sql` names a table outside `owned`.
pub fn check_owned(
    service: &'static str,
    owned: &HashSet<String>,
    sql: &str,
    engine: Engine,
) -> Result<(), StoreError> {
    for table in tables_touched(sql, engine).map_err(StoreError::Unparsable)? {
        if table != MIGRATIONS_TABLE && !TABLE_VALUED_FUNCTIONS.contains(&table.as_str()) && !owned.contains(&table) {
            return Err(StoreError::ForeignTable { service, table });
        }
    }
    Ok(())
}

fn last_ident(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).trim_matches(['"', '`', '[', ']']).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_subqueries_and_writes_are_all_seen() {
        let sql = "insert into audit_log (id) select u.id from users u \
                   join memberships m on m.user_id = u.id where u.id in (select user_id from refresh_tokens)";
        let mut tables = tables_touched(sql, Engine::Sqlite).expect("parses");
        tables.sort();
        assert_eq!(tables, ["audit_log", "memberships", "refresh_tokens", "users"]);
    }

    #[test]
    fn virtual_tables_count_as_created_and_are_not_parsed() {
        let sql = "-- An index; of things.\ncreate table things (id text);\n-- Search; words.\n\
                   create virtual table search_index using fts5 (body, doc unindexed);\ncreate index i on things (id);";
        let (rest, names) = split_virtual_tables(sql);
        assert_eq!(names, ["search_index"]);
        assert!(!rest.contains("fts5") && rest.contains("create index"), "{rest}");
    }

    #[test]
    fn jsonb_each_is_not_a_foreign_table() {
        let owned = HashSet::from(["things".to_owned()]);
        let sql = "insert into things (id) select value from jsonb_each(?) where true on conflict do nothing";
        check_owned("svc", &owned, sql, Engine::Sqlite).expect("jsonb_each is a function, not a table");
        assert!(check_owned("svc", &owned, "select id from others, jsonb_each(?)", Engine::Sqlite).is_err());
    }

    #[test]
    fn a_cte_is_not_mistaken_for_a_table() {
        let tables = tables_touched("with recent as (select id from users) select id from recent", Engine::Sqlite)
            .expect("parses");
        assert_eq!(tables, ["users"]);
    }

    #[test]
    fn a_statement_naming_another_services_table_fails_the_check() {
        let owned: HashSet<String> = ["users".to_owned()].into();
        let error =
            check_owned("user", &owned, "select u.id, p.code from users u join subscriptions p on 1=1", Engine::Sqlite)
                .expect_err("subscriptions belongs to plan");
        assert!(matches!(error, StoreError::ForeignTable { table, .. } if table == "subscriptions"));
        check_owned("user", &owned, "select id from main.users where id = ?", Engine::Sqlite)
            .expect("own table passes");
    }
}
