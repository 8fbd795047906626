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
//! What is rewritten for MariaDB (placeholders stay `?`):
//! - `jsonb_each(?) [as x]` becomes `json_table(?, '$[*]' columns (`key` for ordinality, value json path
//!   '$')) as x`, and `v ->> 3` / `v ->> 'f'` become `json_value(v, '$[3]')` / `json_value(v, '$.f')`;
//! - `key` (a reserved word there) is quoted, `"names"` become `` `names` ``, `cast(… as bigint)` becomes
//!   `cast(… as signed)` and `cast(… as text)` `cast(… as char)`;
//! - `on conflict … do nothing` becomes `insert ignore`, `on conflict … do update set a = excluded.a`
//!   becomes `on duplicate key update a = values(a)`;
//! - a select whose `from` starts with a row source reads its tables in the written order (`join` becomes
//!   `straight_join`): the rows of a batch lead, each finding its rows by key, whatever the optimizer
//!   believes of the tables' sizes (InnoDB's statistics of a growing or tiny table can say it is empty,
//!   and then a batch of 40 keys scanned an inbox's every contact);
//! - `update t set … from source where …` becomes `update source straight_join t set … where …` (the
//!   `set` clause may not hold a placeholder: the source moves ahead of it);
//! - `in (select … limit ?)`, which MariaDB refuses, reads from a derived table: `in (select * from (select
//!   … limit ?) as _inN)`.
//!
//! What cannot be rewritten (full-text search, a statement shaped differently per engine) is written per
//! engine in the service's store, beside its twins, chosen by `match` on `Namespace::engine()` (inbox's
//! search is the one so far).

use std::fmt::Write as _;

/// The database engines a namespace can live on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Sqlite,
    Postgres,
    /// MariaDB (10.6 or later; MySQL 8 lacks `returning`, which the stores use).
    MySql,
}

impl Engine {
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        }
    }
}

/// `sql` (SQLite's dialect) as `engine` runs it.
pub fn translate(engine: Engine, sql: &str) -> String {
    match engine {
        Engine::Sqlite => sql.to_owned(),
        Engine::Postgres => to_postgres(sql),
        Engine::MySql => to_mysql(sql),
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

/// SQLite's text rewritten for MariaDB (see the module doc).
fn to_mysql(sql: &str) -> String {
    if let Some(multi_table) = update_from_as_multi_table(sql) {
        return to_mysql(&multi_table);
    }
    let mut out = String::with_capacity(sql.len() + 64);
    let (mut row_sources, mut subqueries, mut ignore) = (0, 0, false);
    // The parenthesis depth of the scan, and the depth of a `from` that a row source leads, whose joins
    // are read in the written order.
    let (mut depth, mut led_by_rows) = (0_usize, None);
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let at_word = c.is_ascii_alphabetic() && !out.ends_with(is_word_char);
        let word = if at_word { &rest[..rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len())] } else { "" };
        match c {
            '\'' => {
                let end = closing(rest, c);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            '"' => {
                let end = closing(rest, c);
                let _ = write!(out, "`{}`", &rest[1..end.saturating_sub(1).max(1)]);
                rest = &rest[end..];
            }
            '-' if rest.starts_with("->>") => {
                rest = rest[3..].trim_start();
                let operand_start = out.trim_end().len();
                let operand_from =
                    out[..operand_start].rfind(|c: char| !is_word_char(c) && c != '.').map_or(0, |i| i + 1);
                let operand = out[operand_from..operand_start].to_owned();
                out.truncate(operand_from);
                let path = if rest.starts_with('\'') {
                    let end = closing(rest, '\'');
                    let key = &rest[1..end - 1];
                    rest = &rest[end..];
                    if key.starts_with('$') { key.to_owned() } else { format!("$.{key}") }
                } else {
                    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                    let index = &rest[..end];
                    rest = &rest[end..];
                    format!("$[{index}]")
                };
                let _ = write!(out, "json_value({operand}, '{path}')");
            }
            '-' if rest.starts_with("--") => {
                let end = rest.find('\n').unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            _ if word == "jsonb_each" && rest.starts_with("jsonb_each(?)") => {
                row_sources += 1;
                rest = &rest["jsonb_each(?)".len()..];
                let alias = take_alias(&mut rest).map_or_else(|| format!("_rows{row_sources}"), str::to_owned);
                if out.trim_end().strip_suffix("from").is_some_and(|before| !before.ends_with(is_word_char)) {
                    led_by_rows = Some(depth);
                }
                let _ =
                    write!(out, "json_table(?, '$[*]' columns (`key` for ordinality, value json path '$')) as {alias}");
            }
            _ if word == "join" && led_by_rows == Some(depth) && {
                let before = out.trim_end();
                !["left", "right", "inner", "outer", "cross", "natural"].iter().any(|kind| before.ends_with(kind))
            } =>
            {
                out.push_str("straight_join");
                rest = &rest[word.len()..];
            }
            _ if word == "key" && !out.trim_end().ends_with('.') => {
                out.push_str("`key`");
                rest = &rest[3..];
            }
            _ if matches!(word, "bigint" | "integer" | "text") && out.ends_with("as ") && {
                let after = rest[word.len()..].trim_start();
                after.starts_with(')')
            } =>
            {
                out.push_str(if word == "text" { "char" } else { "signed" });
                rest = &rest[word.len()..];
            }
            _ if word == "excluded" && rest[word.len()..].starts_with('.') => {
                let column_from = word.len() + 1;
                let len = rest[column_from..].find(|c: char| !is_word_char(c)).unwrap_or(rest.len() - column_from);
                let _ = write!(out, "values({})", &rest[column_from..column_from + len]);
                rest = &rest[column_from + len..];
            }
            _ if word == "on" && starts_with_words(&rest[2..], &["conflict"]) => {
                // `on conflict [(columns)] do nothing | do update set`.
                let mut after = rest[2..].trim_start()["conflict".len()..].trim_start();
                if after.starts_with('(') {
                    after = after[closing_paren(after)..].trim_start();
                }
                if let Some(tail) = strip_words(after, &["do", "nothing"]) {
                    ignore = true;
                    out.truncate(out.trim_end().len());
                    rest = tail;
                } else if let Some(tail) = strip_words(after, &["do", "update", "set"]) {
                    out.push_str("on duplicate key update");
                    rest = tail;
                } else {
                    out.push_str("on");
                    rest = &rest[2..];
                }
            }
            _ if word == "in" && {
                let after = rest[2..].trim_start();
                after.starts_with('(') && starts_with_words(&after[1..], &["select"])
            } =>
            {
                let after = rest[2..].trim_start();
                let end = closing_paren(after);
                let inner = &after[1..end - 1];
                let translated = to_mysql(inner);
                if has_word(inner, "limit") {
                    subqueries += 1;
                    let _ = write!(out, "in (select * from ({translated}) as _in{subqueries})");
                } else {
                    let _ = write!(out, "in ({translated})");
                }
                rest = &after[end..];
            }
            _ if at_word => {
                out.push_str(word);
                rest = &rest[word.len()..];
            }
            _ => {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth = depth.saturating_sub(1);
                        led_by_rows = led_by_rows.filter(|&led| led <= depth);
                    }
                    _ => {}
                }
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if ignore && let Some(at) = out.find("insert into") {
        out.replace_range(at..at + "insert into".len(), "insert ignore into");
    }
    out
}

/// `update t set … from source where …` (SQLite's and PostgreSQL's form) as MariaDB's multi-table
/// update, `update source straight_join t set … where …` (the source's rows lead, as in a select they
/// lead); `None` if `sql` is not such a statement.
///
/// MariaDB's placeholders are positional and the source moves ahead of the `set` clause, so a `set`
/// clause must not hold one (carry the value in the source's rows instead): a debug build panics on one,
/// and MariaDB would bind the values to the wrong places.
fn update_from_as_multi_table(sql: &str) -> Option<String> {
    let body = strip_words(sql, &["update"])?;
    let set = top_level_word(body, "set")?;
    let from = set + top_level_word(&body[set..], "from")?;
    let (target, assignments) = (body[..set].trim(), body[set + "set".len()..from].trim());
    let after_from = &body[from + "from".len()..];
    let (source, rest) = match top_level_word(after_from, "where") {
        Some(at) => (after_from[..at].trim(), &after_from[at..]),
        None => (after_from.trim(), ""),
    };
    debug_assert!(
        top_level_char(assignments, '?').is_none(),
        "a placeholder in the set clause of an update … from, which MariaDB would bind out of order: {sql}"
    );
    Some(format!("update {source} straight_join {target} set {assignments} {rest}"))
}

/// Where `word` first stands as a whole word in `text` outside literals, quoted names and parentheses.
fn top_level_word(text: &str, word: &str) -> Option<usize> {
    top_level(text, |at| {
        text[at..].starts_with(word)
            && !text[..at].ends_with(is_word_char)
            && !text[at + word.len()..].starts_with(is_word_char)
    })
}

/// Where `wanted` first stands in `text` outside literals, quoted names and parentheses.
fn top_level_char(text: &str, wanted: char) -> Option<usize> {
    top_level(text, |at| text[at..].starts_with(wanted))
}

/// The first place in `text`, outside literals, quoted names and parentheses, where `found` holds.
fn top_level(text: &str, found: impl Fn(usize) -> bool) -> Option<usize> {
    let (mut depth, mut i) = (0_usize, 0);
    while let Some(c) = text[i..].chars().next() {
        match c {
            '\'' | '"' => {
                i += closing(&text[i..], c);
                continue;
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 && found(i) => return Some(i),
            _ => {}
        }
        i += c.len_utf8();
    }
    None
}

/// Whether `text`, after whitespace, starts with `words` separated by whitespace.
fn starts_with_words(text: &str, words: &[&str]) -> bool {
    strip_words(text, words).is_some()
}

/// `text` after `words` (each preceded by whitespace or nothing), if it starts with them.
fn strip_words<'a>(text: &'a str, words: &[&str]) -> Option<&'a str> {
    let mut rest = text;
    for word in words {
        rest = rest.trim_start().strip_prefix(word)?;
        if rest.starts_with(is_word_char) && word.ends_with(is_word_char) {
            return None;
        }
    }
    Some(rest)
}

/// Whether `text` has `word` as a whole word outside literals (roughly: literals are not skipped, which
/// only errs towards wrapping a subquery that did not need it).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word)
        .any(|(at, _)| !text[..at].ends_with(is_word_char) && !text[at + word.len()..].starts_with(is_word_char))
}

/// The length of the parenthesised text at the start of `text`, parentheses included (literals skipped).
fn closing_paren(text: &str) -> usize {
    let mut depth = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        match c {
            '\'' | '"' => {
                i += closing(&text[i..], c);
                continue;
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    text.len()
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

    #[test]
    fn mariadb_reads_row_sets_from_json_table_and_fields_with_json_value() {
        assert_eq!(
            to_mysql(
                "insert into t (a, b) select value ->> 0, cast(value ->> 1 as bigint) from jsonb_each(?) where true order by key"
            ),
            "insert into t (a, b) select json_value(value, '$[0]'), cast(json_value(value, '$[1]') as signed) from \
             json_table(?, '$[*]' columns (`key` for ordinality, value json path '$')) as _rows1 where true order by `key`"
        );
        assert_eq!(
            to_mysql("select q.value ->> 'content', x.key from jsonb_each(?) as q"),
            "select json_value(q.value, '$.content'), x.key from json_table(?, '$[*]' columns (`key` for ordinality, \
             value json path '$')) as q"
        );
    }

    #[test]
    fn mariadb_reads_a_select_led_by_a_row_source_in_the_written_order() {
        let rows = "json_table(?, '$[*]' columns (`key` for ordinality, value json path '$'))";
        assert_eq!(
            to_mysql("select e.a from jsonb_each(?) as k join e on e.id = k.value ->> 0 left join f on f.id = e.f"),
            format!(
                "select e.a from {rows} as k straight_join e on e.id = json_value(k.value, '$[0]') left join f on f.id = e.f"
            )
        );
        // Only the joins of the `from` the rows lead, not those of the statement around it.
        assert_eq!(
            to_mysql(
                "select p.a from (select t.a from jsonb_each(?) as q join t on t.b = q.value ->> 0) p join u on u.a = p.a"
            ),
            format!(
                "select p.a from (select t.a from {rows} as q straight_join t on t.b = json_value(q.value, '$[0]')) p \
                 join u on u.a = p.a"
            )
        );
        // Rows that do not lead the `from` leave the optimizer its choice.
        assert_eq!(
            to_mysql("select t.a from t join jsonb_each(?) as q on t.b = q.value ->> 0 join u on u.a = t.a"),
            format!("select t.a from t join {rows} as q on t.b = json_value(q.value, '$[0]') join u on u.a = t.a")
        );
    }

    #[test]
    fn mariadb_upserts_and_ignores() {
        assert_eq!(
            to_mysql("insert into t (id, a) values (?, ?) on conflict (id) do nothing"),
            "insert ignore into t (id, a) values (?, ?)"
        );
        assert_eq!(
            to_mysql("insert into t (id, a) values (?, ?) on conflict do nothing returning id"),
            "insert ignore into t (id, a) values (?, ?) returning id"
        );
        assert_eq!(
            to_mysql(
                "insert into c (k, v) values (?, ?) on conflict (k) do update set v = c.v + excluded.v, w = 'on conflict'"
            ),
            "insert into c (k, v) values (?, ?) on duplicate key update v = c.v + values(v), w = 'on conflict'"
        );
    }

    #[test]
    fn mariadb_updates_from_a_row_source_as_a_multi_table_update() {
        assert_eq!(
            to_mysql(
                "update t set a = x.value ->> 0, b = coalesce(b, '(from) where') from jsonb_each(?) as x \
                 where t.id = x.value ->> 1 and t.c in (select c from u where d = ?)"
            ),
            "update json_table(?, '$[*]' columns (`key` for ordinality, value json path '$')) as x straight_join t \
             set a = json_value(x.value, '$[0]'), b = coalesce(b, '(from) where') where t.id = json_value(x.value, '$[1]') \
             and t.c in (select c from u where d = ?)"
        );
        // Not an update from a source: left to the other rules.
        assert_eq!(
            to_mysql("update t set a = ? where b in (select b from u)"),
            "update t set a = ? where b in (select b from u)"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a placeholder in the set clause")]
    fn mariadb_refuses_a_placeholder_it_would_bind_out_of_order() {
        let _ = to_mysql("update t set a = ? from jsonb_each(?) as x where t.id = x.value ->> 0");
    }

    #[test]
    fn mariadb_reads_a_limited_subquery_from_a_derived_table() {
        assert_eq!(
            to_mysql("delete from t where seq in (select seq from t where a < ? order by seq limit ?)"),
            "delete from t where seq in (select * from (select seq from t where a < ? order by seq limit ?) as _in1)"
        );
        assert_eq!(
            to_mysql("select a from t where id in (select id from u where \"b\" = '?')"),
            "select a from t where id in (select id from u where `b` = '?')"
        );
    }
}
