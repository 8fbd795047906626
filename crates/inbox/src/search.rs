//! Search that works for Japanese as well as English.
//!
//! Japanese (and Chinese) text has no spaces between words, so a word index cannot find 返品 inside
//! 返品したいです. Text is therefore indexed as tokens: runs of letters and digits in scripts that separate
//! words (Latin, Cyrillic, …) stay whole words, and runs of CJK characters (kanji, hiragana, katakana,
//! hangul) become their overlapping two-character bigrams. A query is cut the same way: a CJK run becomes
//! a phrase of its bigrams (so 返品したい must appear contiguously), a single CJK character or a word
//! becomes a prefix match. On SQLite FTS5 does the rest; on the other engines the tokens and their
//! positions are rows of `search_terms`, and a phrase is its tokens at consecutive positions (no server
//! setting is involved: MariaDB's FULLTEXT would ignore two-character tokens, PostgreSQL's parsers depend
//! on the database's locale).

/// The index text of a contact: what it is found by.
pub fn contact_text(name: Option<&str>, email: Option<&str>, phone: Option<&str>) -> String {
    index_text(&[name, email, phone].into_iter().flatten().collect::<Vec<_>>().join(" "))
}

/// The index text for `text`: its tokens, space-separated.
pub fn index_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for run in runs(text) {
        match run {
            Run::Word(word) => push_token(&mut out, &word.to_lowercase()),
            Run::Cjk(chars) => {
                if chars.len() == 1 {
                    push_token(&mut out, &chars[0].to_string());
                }
                for pair in chars.windows(2) {
                    push_token(&mut out, &pair.iter().collect::<String>());
                }
            }
        }
    }
    out
}

/// A search within one account: every phrase must match. SQLite's FTS5 reads it as a match expression,
/// the other engines as rows of the portable index (`search_terms`).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub account: contracts::AccountId,
    /// The FTS5 match expression (SQLite).
    pub fts: String,
    /// The tokens to find, as JSON rows `[phrase, offset, from, to, phrase length]`: a document matches
    /// a phrase where its tokens at consecutive positions (offsets 0, 1, …) fall in `from..=to` (one token
    /// for a whole token, a range for a prefix).
    pub terms: String,
    /// How many phrases must all match.
    pub phrases: i64,
}

/// The longest token the portable index keeps; longer words are cut to it, in the index and in queries.
pub const MAX_TOKEN_CHARS: usize = 64;

/// Beyond every character: a prefix's range ends at the prefix followed by it.
const LAST_CHAR: char = '\u{10FFFF}';

/// `query` within `account`, or `None` if it has nothing to search for.
pub fn parse(account: contracts::AccountId, query: &str) -> Option<Query> {
    let fts = match_query(&scope(account), query)?;
    let mut rows: Vec<(i64, i64, String, String, i64)> = Vec::new();
    let mut phrases = 0;
    for run in runs(query) {
        let tokens: Vec<(String, bool)> = match run {
            Run::Word(word) => vec![(token(&word.to_lowercase()), true)],
            Run::Cjk(chars) if chars.len() == 1 => vec![(chars[0].to_string(), true)],
            Run::Cjk(chars) => chars.windows(2).map(|pair| (pair.iter().collect(), false)).collect(),
        };
        let length = i64::try_from(tokens.len()).unwrap_or(i64::MAX);
        for (offset, (token, prefix)) in (0..).zip(tokens) {
            let to = if prefix { format!("{token}{LAST_CHAR}") } else { token.clone() };
            rows.push((phrases, offset, token, to, length));
        }
        phrases += 1;
    }
    let terms = serde_json::to_string(&rows).ok()?;
    Some(Query { account, fts, terms, phrases })
}

/// The tokens of `text` with their positions, for the portable index: [`index_text`]'s, each cut to
/// [`MAX_TOKEN_CHARS`].
pub fn index_tokens(body: &str) -> Vec<(String, i64)> {
    body.split(' ').filter(|t| !t.is_empty()).map(token).zip(0..).collect()
}

fn token(text: &str) -> String {
    text.chars().take(MAX_TOKEN_CHARS).collect()
}

/// The FTS5 query for `query` within `scope` (the account), or `None` if the query has nothing to search
/// for. Every term must match.
fn match_query(scope: &str, query: &str) -> Option<String> {
    let mut terms = Vec::new();
    for run in runs(query) {
        match run {
            Run::Word(word) => terms.push(format!("\"{}\"*", word.to_lowercase())),
            Run::Cjk(chars) if chars.len() == 1 => terms.push(format!("\"{}\"*", chars[0])),
            Run::Cjk(chars) => {
                let bigrams: Vec<String> = chars.windows(2).map(|pair| pair.iter().collect()).collect();
                terms.push(format!("\"{}\"", bigrams.join(" ")));
            }
        }
    }
    if terms.is_empty() {
        return None;
    }
    Some(format!("scope:\"{scope}\" AND body:({})", terms.join(" AND ")))
}

/// The account's scope token: its id without hyphens, one token to the tokenizer.
pub fn scope(account: contracts::AccountId) -> String {
    account.0.simple().to_string()
}

enum Run {
    Word(String),
    Cjk(Vec<char>),
}

fn push_token(out: &mut String, token: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(token);
}

/// Splits text into word runs and CJK runs; everything else (spaces, punctuation, symbols) separates them.
fn runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut word = String::new();
    let mut cjk = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.push(c);
        } else {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        runs.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        runs.push(Run::Cjk(cjk));
    }
    runs
}

/// Characters of scripts written without spaces between words (and the prolonged sound mark ー, which
/// belongs to katakana words).
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'   // hiragana, katakana
        | '\u{31F0}'..='\u{31FF}' // katakana phonetic extensions
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}' // half-width katakana
        | '\u{AC00}'..='\u{D7AF}' // hangul syllables
        | '\u{20000}'..='\u{2FA1F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_is_indexed_as_bigrams_and_words_stay_whole() {
        assert_eq!(index_text("返品したい iPhone15です"), "返品 品し した たい iphone15 です");
    }

    #[test]
    fn a_single_kanji_is_a_token_of_its_own() {
        assert_eq!(index_text("「雨」"), "雨");
    }

    #[test]
    fn a_two_character_query_is_one_bigram_phrase() {
        assert_eq!(match_query("abc", "返品").as_deref(), Some("scope:\"abc\" AND body:(\"返品\")"));
    }

    #[test]
    fn a_longer_query_must_appear_contiguously() {
        assert_eq!(
            match_query("abc", "返品したい refund").as_deref(),
            Some("scope:\"abc\" AND body:(\"返品 品し した たい\" AND \"refund\"*)")
        );
    }

    #[test]
    fn a_query_for_the_portable_index_is_phrases_of_tokens_and_prefix_ranges() {
        let account = contracts::AccountId::new();
        let query = parse(account, "返品した Refund").expect("a query");
        let rows: Vec<(i64, i64, String, String, i64)> = serde_json::from_str(&query.terms).expect("JSON");
        assert_eq!(query.phrases, 2);
        assert_eq!(
            rows,
            [
                (0, 0, "返品".to_owned(), "返品".to_owned(), 3),
                (0, 1, "品し".to_owned(), "品し".to_owned(), 3),
                (0, 2, "した".to_owned(), "した".to_owned(), 3),
                (1, 0, "refund".to_owned(), format!("refund{LAST_CHAR}"), 1),
            ]
        );
        assert_eq!(index_tokens(&index_text("返品 Refund")), [("返品".to_owned(), 0), ("refund".to_owned(), 1)]);
    }

    #[test]
    fn punctuation_alone_is_no_query_and_cannot_inject_syntax() {
        assert_eq!(
            match_query("abc", "\"*)( AND OR -"),
            Some("scope:\"abc\" AND body:(\"and\"* AND \"or\"*)".to_owned())
        );
        assert_eq!(match_query("abc", "「」、。!?\"()"), None);
    }
}
