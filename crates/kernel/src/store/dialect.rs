//! One SQL text for every engine: services write SQLite's dialect with `?` placeholders, and the kernel
//! rewrites the few mechanical differences for the engine a namespace runs on, once per statement.
//!
//! What is rewritten for PostgreSQL:
//! - `?` placeholders become `$1`, `$2`, … (outside string literals, quoted names and comments);
//! - `jsonb_each(?)`, the set-based statements' row source (an array of rows, [`super::json_rows`]),
//!   becomes `jsonb_array_elements(cast($n as jsonb)) with ordinality as alias(value, key)`, so `value`
//!   is each row and `key` its place, as in SQLite (`value ->> 'field'` is text there: a statement casts
//!   what is not text, `cast(value ->> 'at' as bigint)`, which SQLite accepts as well).
//!
//! What cannot be rewritten (full-text search, a statement shaped differently per engine) is written per
//! engine with [`dialects!`](crate::dialects), beside its twins in the service's store.

use std::fmt::Write as _;

/// The database engines a namespace can live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// A statement: one text for every engine, or one per engine ([`dialects!`](crate::dialects)).
#[derive(Debug, Clone, Copy)]
pub enum Sql {
    Portable(&'static str),
    PerEngine(&'static Dialects),
}

/// A statement's text on each engine.
#[derive(Debug)]
pub struct Dialects {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl From<&'static str> for Sql {
    fn from(sql: &'static str) -> Self {
        Sql::Portable(sql)
    }
}

impl Sql {
    /// The text written for `engine`, before [`translate`].
    pub fn text(self, engine: Engine) -> &'static str {
        match (self, engine) {
            (Sql::Portable(sql), _) => sql,
            (Sql::PerEngine(d), Engine::Sqlite) => d.sqlite,
            (Sql::PerEngine(d), Engine::Postgres) => d.postgres,
        }
    }
}

/// A statement whose text differs per engine, e.g. full-text search:
/// `dialects! { sqlite: "… match ?", postgres: "… t.term >= ? …" }`. Each text is written with `?`
/// placeholders and `jsonb_each(?)` row sources, rewritten for its engine like portable text.
#[macro_export]
macro_rules! dialects {
    (sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {
        $crate::store::Sql::PerEngine(&$crate::store::Dialects { sqlite: $sqlite, postgres: $postgres })
    };
}

/// `sql` (SQLite's dialect) as `engine` runs it.
pub fn translate(engine: Engine, sql: &str) -> String {
    match engine {
        Engine::Sqlite => sql.to_owned(),
        Engine::Postgres => to_postgres(sql),
    }
}

/// SQLite's text rewritten for PostgreSQL (see the module doc): a scan that copies literals, quoted names
/// and comments untouched.
fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut placeholder = 0;
    let mut row_sources = 0;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        match c {
            '\'' | '"' => {
                let end = closing(rest, c);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            '-' if rest.starts_with("--") => {
                let end = rest.find('\n').unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            '?' => {
                placeholder += 1;
                let _ = write!(out, "${placeholder}");
                rest = &rest[1..];
            }
            'j' if rest.starts_with("jsonb_each(?)") && !out.ends_with(is_word_char) => {
                placeholder += 1;
                row_sources += 1;
                rest = &rest["jsonb_each(?)".len()..];
                let alias = take_alias(&mut rest).map_or_else(|| format!("_rows{row_sources}"), str::to_owned);
                let _ = write!(
                    out,
                    "jsonb_array_elements(cast(${placeholder} as jsonb)) with ordinality as {alias}(value, key)"
                );
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The length of the quoted literal or name at the start of `text` (doubled quotes stay inside it).
fn closing(text: &str, quote: char) -> usize {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            if chars.peek().is_some_and(|&(_, next)| next == quote) {
                chars.next();
                continue;
            }
            return i + 1;
        }
    }
    text.len()
}

/// Takes ` as name` from the start of `rest`, if it is there.
fn take_alias<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let trimmed = rest.trim_start();
    let after_as = trimmed.strip_prefix("as ")?.trim_start();
    let len = after_as.find(|c: char| !is_word_char(c)).unwrap_or(after_as.len());
    if len == 0 {
        return None;
    }
    *rest = &after_as[len..];
    Some(&after_as[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_literals_names_and_comments() {
        assert_eq!(
            to_postgres("select '?', \"a?\" from t where a = ? and b = 'it''s ?' -- why?\n and c = ?"),
            "select '?', \"a?\" from t where a = $1 and b = 'it''s ?' -- why?\n and c = $2"
        );
    }

    #[test]
    fn a_row_source_keeps_its_alias_or_gets_one_and_numbers_its_placeholder() {
        assert_eq!(
            to_postgres("update t set a = x.value ->> 0 from jsonb_each(?) as x where t.id = ?"),
            "update t set a = x.value ->> 0 from jsonb_array_elements(cast($1 as jsonb)) with ordinality as \
             x(value, key) where t.id = $2"
        );
        assert_eq!(
            to_postgres("insert into t select ?, value ->> 'a' from jsonb_each(?) order by key"),
            "insert into t select $1, value ->> 'a' from jsonb_array_elements(cast($2 as jsonb)) with ordinality \
             as _rows1(value, key) order by key"
        );
    }

    #[test]
    fn sqlite_text_is_left_as_it_is() {
        let sql = "select value ->> 0 from jsonb_each(?) where a = ?";
        assert_eq!(translate(Engine::Sqlite, sql), sql);
    }
}
