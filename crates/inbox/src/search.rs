//! Search that works for Japanese as well as English.
//!
//! Japanese (and Chinese) text has no spaces between words, so a word index cannot find 返品 inside
//! 返品したいです. Text is therefore indexed as tokens: runs of letters and digits in scripts that separate
//! words (Latin, Cyrillic, …) stay whole words, and runs of CJK characters (kanji, hiragana, katakana,
//! hangul) become their overlapping two-character bigrams. A query is cut the same way: a CJK run becomes
//! a phrase of its bigrams (so 返品したい must appear contiguously), a single CJK character or a word
//! becomes a prefix match. FTS5 does the rest.

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

/// The FTS5 query for `query` within `scope` (the account), or `None` if the query has nothing to search
/// for. Every term must match.
pub fn match_query(scope: &str, query: &str) -> Option<String> {
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
    fn punctuation_alone_is_no_query_and_cannot_inject_syntax() {
        assert_eq!(
            match_query("abc", "\"*)( AND OR -"),
            Some("scope:\"abc\" AND body:(\"and\"* AND \"or\"*)".to_owned())
        );
        assert_eq!(match_query("abc", "「」、。!?\"()"), None);
    }
}
