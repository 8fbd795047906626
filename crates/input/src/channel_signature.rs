//! The `X-OmniDesk-Signature` header: how a server-to-server caller proves a post comes from the holder of
//! the inbox's secret, and how the callbacks we send prove they come from us.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`. Each `v1` is the lower-case hex HMAC-SHA256 of
//! `"{t}.{raw body}"` keyed with the channel secret's bytes — the scheme payment providers use, implemented
//! once in `kernel::signature` — so callers can reuse the code they already have. Several
//! `v1` are accepted so that a caller can sign with two secrets while one is being rotated. Timestamps more
//! than 300 s from now are refused, and signatures are compared in constant time.

/// The header carrying the signature, on inbound posts and on outbound callbacks.
pub const HEADER: &str = "x-omnidesk-signature";

/// How far, in seconds, a signature's timestamp may be from now: a captured request cannot be replayed
/// later than this, and clocks a few minutes apart still agree.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelSignatureError {
    /// The header is absent.
    #[error("the X-OmniDesk-Signature header is missing")]
    Missing,
    /// The header cannot be read; the reason names what is wrong with it.
    #[error("malformed X-OmniDesk-Signature header: {0}")]
    Malformed(&'static str),
    /// A signature matches, but it was made too long ago (a replay) or claims to come from the future.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches the body under the channel's secret.
    #[error("no signature matches the body")]
    NoMatch,
}

/// Verifies that `body` was signed with `secret` within `tolerance_secs` of `now_unix` (the kernel's
/// timestamped HMAC scheme), and returns the signature's timestamp. Every candidate is compared in
/// constant time, and signatures are checked before the timestamp, so `Stale` is only reported to a
/// caller who holds the secret.
///
/// A valid signature proves who sent the body, not that it was sent only once: the input service accepts
/// each signature (its timestamp and body) once per inbox, so a captured request cannot be replayed under
/// another Idempotency-Key within the tolerance.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, ChannelSignatureError> {
    use kernel::signature::SignatureError as Scheme;
    let header = header.ok_or(ChannelSignatureError::Missing)?;
    let verified = kernel::signature::verify(header, body, secret, now_unix, tolerance_secs)
        .and_then(|()| kernel::signature::signed_at(header));
    verified.map_err(|error| match error {
        Scheme::Malformed(why) => ChannelSignatureError::Malformed(why),
        Scheme::StaleTimestamp => ChannelSignatureError::Stale,
        // An empty key is one anyone can sign with; channels always have a random secret, so this only
        // guards against a broken row, and the caller only learns that its signature does not match.
        Scheme::MissingSecret | Scheme::NoMatchingSignature => ChannelSignatureError::NoMatch,
    })
}

pub use kernel::signature::sign;

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "chs_test_secret_0123456789";
    const BODY: &[u8] = br#"{"contact":{"source_id":"u-1"},"content":"hello"}"#;
    const NOW: i64 = 1_800_000_000;

    fn v1_of(header: &str) -> &str {
        header.split_once(",v1=").map_or("", |(_, sig)| sig)
    }

    #[test]
    fn a_freshly_signed_body_verifies() {
        let header = sign(BODY, SECRET, NOW);

        assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Ok(NOW));
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body_keyed_with_the_secret() {
        // The same vector as the payment provider's scheme: hmac(b"whsec_abc", b"1600000000.{}", sha256).
        assert_eq!(
            sign(b"{}", "whsec_abc", 1_600_000_000),
            "t=1600000000,v1=1cc0cbfe62c2754f7846b4998dfa41a0f85b8c221a7e8d26d8a0ed5264da69a9"
        );
    }

    #[test]
    fn a_missing_header_is_reported_as_missing() {
        assert_eq!(verify(None, BODY, SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::Missing));
    }

    #[test]
    fn a_body_changed_after_signing_is_rejected() {
        let header = sign(BODY, SECRET, NOW);

        assert_eq!(verify(Some(&header), b"{}", SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }

    #[test]
    fn a_body_signed_with_another_secret_is_rejected() {
        let header = sign(BODY, "chs_someone_else", NOW);

        assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }

    #[test]
    fn a_signature_just_inside_the_tolerance_is_accepted_on_both_sides() {
        for t in [NOW - TOLERANCE_SECS, NOW + TOLERANCE_SECS] {
            let header = sign(BODY, SECRET, t);
            assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Ok(t), "t = {t}");
        }
    }

    #[test]
    fn a_signature_outside_the_tolerance_is_stale() {
        for t in [NOW - TOLERANCE_SECS - 1, NOW + TOLERANCE_SECS + 1] {
            let header = sign(BODY, SECRET, t);
            assert_eq!(
                verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS),
                Err(ChannelSignatureError::Stale),
                "t = {t}"
            );
        }
    }

    #[test]
    fn a_forged_old_signature_is_a_mismatch_not_stale() {
        let header = sign(BODY, "chs_forger", NOW - 3600);

        assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }

    #[test]
    fn one_matching_v1_among_several_is_enough_whatever_its_position() {
        let good = sign(BODY, SECRET, NOW);
        let wrong = "0".repeat(64);
        for header in [
            format!("t={NOW},v1={wrong},v1={}", v1_of(&good)),
            format!("t={NOW},v1={},v1={wrong}", v1_of(&good)),
            format!("v1={wrong}, t={NOW}, v1={}, v2=future", v1_of(&good)),
        ] {
            assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Ok(NOW), "{header}");
        }
    }

    #[test]
    fn a_matching_signature_under_another_scheme_does_not_count() {
        let good = sign(BODY, SECRET, NOW);
        let header = format!("t={NOW},v0={},v1={}", v1_of(&good), "0".repeat(64));

        assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }

    #[test]
    fn upper_case_hex_does_not_match() {
        let good = sign(BODY, SECRET, NOW);
        let header = format!("t={NOW},v1={}", v1_of(&good).to_uppercase());

        assert_eq!(verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }

    #[test]
    fn malformed_headers_are_rejected_with_the_reason() {
        let sig = "0".repeat(64);
        let cases = [
            (String::new(), "no timestamp"),
            ("garbage".to_owned(), "no timestamp"),
            (format!("v1={sig}"), "no timestamp"),
            (format!("t=,v1={sig}"), "timestamp is not a number"),
            (format!("t=-5,v1={sig}"), "timestamp is not a number"),
            (format!("t=1e9,v1={sig}"), "timestamp is not a number"),
            (format!("t=99999999999999999999,v1={sig}"), "timestamp is out of range"),
            (format!("t={NOW}"), "no v1 signature"),
            (format!("t={NOW},t={NOW},v1={sig}"), "more than one timestamp"),
        ];
        for (header, reason) in cases {
            assert_eq!(
                verify(Some(&header), BODY, SECRET, NOW, TOLERANCE_SECS),
                Err(ChannelSignatureError::Malformed(reason)),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        let header = sign(BODY, "", NOW);

        assert_eq!(verify(Some(&header), BODY, "", NOW, TOLERANCE_SECS), Err(ChannelSignatureError::NoMatch));
    }
}
