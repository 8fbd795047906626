//! Timestamped HMAC signatures of request bodies, the scheme payment providers use for webhooks: the
//! payment service verifies the provider's `Stripe-Signature` with it, and the input service both
//! verifies `X-OmniDesk-Signature` on server-to-server posts and signs the reply callbacks it sends.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, possibly with other schemes (`v0=` in Stripe's
//! test mode) that are ignored. Each `v1` is the lower-case hex HMAC-SHA256 of `"{t}.{raw body}"` keyed
//! with the whole secret string as bytes, exactly as Stripe's SDKs use it. More than one `v1` appears
//! while a secret is being rolled, so a body is authentic when any of them matches.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far, in seconds, a signature's timestamp may be from now (the tolerance Stripe's SDKs use): a
/// captured request cannot be replayed later than this, and clocks a few minutes apart still agree.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The only scheme signed; `v0` and anything newer are ignored, so that the format can grow.
const SCHEME: &str = "v1";

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header cannot be read; the reason names what is wrong with it.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// No secret is configured. Refusing here matters: an empty HMAC key is one anyone can use.
    #[error("no signing secret is configured")]
    MissingSecret,
    /// A signature matches, but it was made too long ago (a replay) or claims to come from the future.
    #[error("the signature's timestamp is outside the tolerance")]
    StaleTimestamp,
    /// No `v1` signature matches the body under this secret.
    #[error("no signature matches the payload")]
    NoMatchingSignature,
}

/// Verifies that `body` was signed with `secret` within `tolerance_secs` of `now_unix`.
///
/// The signatures are checked before the timestamp, as Stripe's SDKs do, so that `StaleTimestamp` is
/// only ever reported to a holder of the secret: a genuine sign of a replay or of clock skew, and nothing
/// a forger can learn the clock from. A negative tolerance is treated as zero.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if secret.trim().is_empty() {
        return Err(SignatureError::MissingSecret);
    }
    let parsed = ParsedHeader::parse(header)?;
    let expected = hex(&mac(body, secret, parsed.timestamp));
    // Stripe's SDKs compare the hex strings, so an upper-case or otherwise re-encoded signature is not a
    // match there either; comparing the same way keeps our verdicts identical to theirs.
    // Every candidate is compared, even after a match, so the time taken does not say which one matched.
    let matches = parsed
        .signatures
        .iter()
        .fold(false, |found, candidate| found | bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return Err(SignatureError::NoMatchingSignature);
    }
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(parsed.timestamp) > tolerance {
        return Err(SignatureError::StaleTimestamp);
    }
    Ok(())
}

/// The timestamp (unix seconds) a header says its signatures were made at. With the body, it is what a
/// signature covers: a receiver that accepts each signature once remembers the two.
pub fn signed_at(header: &str) -> Result<i64, SignatureError> {
    ParsedHeader::parse(header).map(|parsed| parsed.timestamp)
}

/// The header value for `body` signed with `secret` at `timestamp` (unix seconds).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    format!("t={timestamp},{SCHEME}={}", hex(&mac(body, secret, timestamp)))
}

/// The header's parts that verification needs.
struct ParsedHeader<'a> {
    timestamp: i64,
    signatures: Vec<&'a str>,
}

impl<'a> ParsedHeader<'a> {
    fn parse(header: &'a str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            // Items without `=` carry nothing we could use; like Stripe's SDKs, skip them rather than fail,
            // so a future extension of the format cannot lock us out. Spaces around an item (which Stripe
            // never sends, and hand-written clients of our own header do) are ignored.
            let Some((key, value)) = item.trim().split_once('=') else {
                continue;
            };
            match key {
                "t" => {
                    // Stripe's SDKs disagree on which of two timestamps wins (the first, or the last), so a
                    // header with two is ambiguous, and Stripe never sends one.
                    if timestamp.is_some() {
                        return Err(SignatureError::Malformed("more than one timestamp"));
                    }
                    timestamp = Some(parse_timestamp(value)?);
                }
                SCHEME => signatures.push(value),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed("no v1 signature"));
        }
        Ok(Self { timestamp, signatures })
    }
}

/// Parses unix seconds: decimal digits only, so that no sign, space or separator can make two different
/// headers sign the same `"{t}."` prefix.
fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed("timestamp is not a number"));
    }
    value.parse().map_err(|_| SignatureError::Malformed("timestamp is out of range"))
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the secret's bytes.
fn mac(body: &[u8], secret: &str, timestamp: i64) -> [u8; 32] {
    // HMAC accepts keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex, the encoding of signatures (and of digests shown elsewhere).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_freshly_signed_body_verifies() {
        let header = sign(BODY, SECRET, NOW);

        assert_eq!(verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body_keyed_with_the_whole_secret() {
        // An independent vector, computed with Python's `hmac` module the way Stripe's SDK does:
        // hmac.new(b"whsec_abc", b"1600000000.{}", sha256).hexdigest()
        let header = sign(b"{}", "whsec_abc", 1_600_000_000);

        assert_eq!(header, "t=1600000000,v1=1cc0cbfe62c2754f7846b4998dfa41a0f85b8c221a7e8d26d8a0ed5264da69a9");
    }

    #[test]
    fn a_body_changed_after_signing_is_rejected() {
        let header = sign(BODY, SECRET, NOW);
        let tampered = br#"{"id":"evt_1","object":"event","type":"invoice.paid "}"#;

        assert_eq!(
            verify(&header, tampered, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_body_signed_with_another_secret_is_rejected() {
        let header = sign(BODY, "whsec_someone_else", NOW);

        assert_eq!(
            verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn a_signature_older_than_the_tolerance_is_rejected_as_stale() {
        let header = sign(BODY, SECRET, NOW - DEFAULT_TOLERANCE_SECS - 1);

        assert_eq!(verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS), Err(SignatureError::StaleTimestamp));
    }

    #[test]
    fn a_signature_exactly_at_the_tolerance_is_accepted() {
        let header = sign(BODY, SECRET, NOW - DEFAULT_TOLERANCE_SECS);

        assert_eq!(verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn a_signature_from_beyond_the_tolerance_in_the_future_is_rejected() {
        let header = sign(BODY, SECRET, NOW + DEFAULT_TOLERANCE_SECS + 1);

        assert_eq!(verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS), Err(SignatureError::StaleTimestamp));
    }

    #[test]
    fn a_forged_stale_delivery_is_reported_as_a_mismatch_not_as_stale() {
        let header = sign(BODY, "whsec_forger", NOW - 3600);

        assert_eq!(
            verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn one_matching_v1_among_several_is_enough() {
        let good = sign(BODY, SECRET, NOW);
        let good_sig = good.split_once(",v1=").map(|(_, sig)| sig).unwrap_or("");
        let header = format!("t={NOW},v1={},v1={good_sig},v0=deadbeef", "0".repeat(64));

        assert_eq!(verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn a_matching_signature_under_an_unknown_scheme_does_not_count() {
        let good = sign(BODY, SECRET, NOW);
        let good_sig = good.split_once(",v1=").map(|(_, sig)| sig).unwrap_or("");
        let header = format!("t={NOW},v0={good_sig},v1={}", "0".repeat(64));

        assert_eq!(
            verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn an_upper_case_signature_does_not_match_as_in_stripes_sdks() {
        let header = sign(BODY, SECRET, NOW).to_uppercase().replace("T=", "t=").replace("V1=", "v1=");

        assert_eq!(
            verify(&header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn malformed_headers_are_rejected_with_the_reason() {
        let sig = "0".repeat(64);
        let cases = [
            ("", "no timestamp"),
            ("garbage", "no timestamp"),
            (&format!("v1={sig}") as &str, "no timestamp"),
            (&format!("t=,v1={sig}"), "timestamp is not a number"),
            (&format!("t=abc,v1={sig}"), "timestamp is not a number"),
            (&format!("t=-5,v1={sig}"), "timestamp is not a number"),
            (&format!("t= 5,v1={sig}"), "timestamp is not a number"),
            (&format!("t=99999999999999999999,v1={sig}"), "timestamp is out of range"),
            (&format!("t={NOW}"), "no v1 signature"),
            (&format!("t={NOW},v0={sig}"), "no v1 signature"),
            (&format!("t={NOW},t={NOW},v1={sig}"), "more than one timestamp"),
        ];

        for (header, reason) in cases {
            assert_eq!(
                verify(header, BODY, SECRET, NOW, DEFAULT_TOLERANCE_SECS),
                Err(SignatureError::Malformed(reason)),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn an_empty_secret_is_refused_even_for_a_body_signed_with_it() {
        let header = sign(BODY, "", NOW);

        assert_eq!(verify(&header, BODY, "", NOW, DEFAULT_TOLERANCE_SECS), Err(SignatureError::MissingSecret));
    }

    #[test]
    fn hex_encodes_lower_case_with_leading_zeros() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
