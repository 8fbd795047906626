//! Cross-checks our webhook signatures against Stripe's official Python SDK, in both directions:
//!
//! - the SDK signs deliveries (and spoils some of them), judges each with `stripe.Webhook.construct_event`,
//!   and our [`verify`] must reach the same verdict, for the same reason;
//! - we sign deliveries with [`sign`], and the SDK must accept exactly those that [`verify`] accepts.
//!
//! The script is `tests/stripe_sdk.py`. It needs `python3` with the `stripe` package (`pip install stripe`);
//! without them these tests fail, on purpose: a cross-check that silently passes checks nothing.
//!
//! Where our rules are deliberately stricter than the SDK's, the cases stay out of the comparison:
//! the SDK accepts timestamps any distance in the future (we reject beyond the tolerance both ways), takes
//! the first of two `t=` items (we reject a header with two), and parses `t` with Python's `int()`, which
//! allows a sign, spaces and underscores (we accept digits only). Stripe sends none of these.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use payment::stripe::{DEFAULT_TOLERANCE_SECS, SignatureError, WebhookEvent, sign, verify};
use serde::Deserialize;
use serde_json::json;

const SECRET: &str = "whsec_omnidesk_rust_side_00112233445566778899aabbccdd";
const OTHER_SECRET: &str = "whsec_rotated_out_ffeeddccbbaa99887766554433221100";

/// The SDK's verdict on one delivery.
#[derive(Debug, Deserialize)]
struct SdkVerdict {
    accepted: bool,
    /// `malformed`, `no_matching_signature`, `stale` or `other` (an SDK message the script does not know).
    reason: Option<String>,
    message: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SdkCases {
    sdk_version: String,
    now: i64,
    tolerance: i64,
    cases: Vec<SdkCase>,
}

#[derive(Debug, Deserialize)]
struct SdkCase {
    name: String,
    body: String,
    header: String,
    secret: String,
    sdk: SdkVerdict,
}

#[derive(Debug, Deserialize)]
struct SdkResults {
    sdk_version: String,
    results: Vec<NamedVerdict>,
}

#[derive(Debug, Deserialize)]
struct NamedVerdict {
    name: String,
    #[serde(flatten)]
    verdict: SdkVerdict,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stripe_sdk.py")
}

/// The interpreter: `$PYTHON` if set, else `python3`.
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails the test, saying what to install, unless the SDK can be imported.
fn require_sdk() {
    let python = python();
    let output = Command::new(&python).args(["-c", "import stripe"]).output().unwrap_or_else(|error| {
        panic!(
            "cannot run `{python}` ({error}); install Python 3 and then `pip install stripe` \
                 (Stripe's official SDK) to run the signature cross-check"
        )
    });
    assert!(
        output.status.success(),
        "Stripe's Python SDK is not installed for `{python}`: run `pip install stripe` to run the \
         signature cross-check.\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the script in `mode`, feeding it `stdin`, and parses what it prints.
fn run_script<T: for<'de> Deserialize<'de>>(mode: &str, stdin: Option<String>) -> T {
    require_sdk();
    let mut child = Command::new(python())
        .arg(script())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the script starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(stdin) = stdin {
        input.write_all(stdin.as_bytes()).expect("the script reads its input");
    }
    drop(input);
    let output = child.wait_with_output().expect("the script finishes");
    assert!(
        output.status.success(),
        "{} {mode} failed ({}):\n{}",
        script().display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the script printed something other than its JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Our verdict in the script's vocabulary: `None` for accepted, else the reason.
fn reason(result: &Result<(), SignatureError>) -> Option<&'static str> {
    match result {
        Ok(()) => None,
        Err(SignatureError::Malformed(_) | SignatureError::MissingSecret) => Some("malformed"),
        Err(SignatureError::NoMatchingSignature) => Some("no_matching_signature"),
        Err(SignatureError::StaleTimestamp) => Some("stale"),
    }
}

/// Compares our verdict with the SDK's, describing any disagreement.
fn disagreement(name: &str, ours: &Result<(), SignatureError>, body: &str, sdk: &SdkVerdict) -> Option<String> {
    let ours_reason = reason(ours);
    if ours.is_ok() != sdk.accepted {
        return Some(format!(
            "{name}: we {} ({ours:?}), the SDK {} ({:?})",
            if ours.is_ok() { "accept" } else { "reject" },
            if sdk.accepted { "accepts" } else { "rejects" },
            sdk.message
        ));
    }
    if let Some(sdk_reason) = sdk.reason.as_deref().filter(|reason| *reason != "other")
        && ours_reason != Some(sdk_reason)
    {
        return Some(format!(
            "{name}: both reject, we as {ours_reason:?}, the SDK as {sdk_reason} ({:?})",
            sdk.message
        ));
    }
    if sdk.accepted {
        let event = match WebhookEvent::parse(body.as_bytes()) {
            Ok(event) => event,
            Err(error) => return Some(format!("{name}: the SDK parsed the event, we did not: {error}")),
        };
        if Some(&event.id) != sdk.event_id.as_ref() || Some(&event.kind) != sdk.event_type.as_ref() {
            return Some(format!(
                "{name}: we parsed {} {}, the SDK {:?} {:?}",
                event.id, event.kind, sdk.event_id, sdk.event_type
            ));
        }
    }
    None
}

#[test]
fn we_reach_the_sdks_verdict_on_every_delivery_it_signed() {
    let SdkCases { sdk_version, now, tolerance, cases } = run_script("cases", None);

    let disagreements: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let ours = verify(&case.header, case.body.as_bytes(), &case.secret, now, tolerance);
            disagreement(&case.name, &ours, &case.body, &case.sdk)
        })
        .collect();

    assert!(disagreements.is_empty(), "stripe {sdk_version} and we disagree:\n{}", disagreements.join("\n"));
    // The comparison means something only if the SDK both accepted and rejected, for every reason.
    for expected in [None, Some("malformed"), Some("no_matching_signature"), Some("stale")] {
        assert!(
            cases.iter().any(|case| case.sdk.reason.as_deref() == expected),
            "no case with SDK verdict {expected:?} among {} cases",
            cases.len()
        );
    }
}

/// One delivery we sign, with the verdict we expect from both sides.
struct OurCase {
    name: &'static str,
    body: String,
    header: String,
    /// The secret the receiver verifies with.
    secret: &'static str,
    accepted: bool,
}

fn our_cases(now: i64) -> Vec<OurCase> {
    let event = |id: &str, kind: &str, object: serde_json::Value| {
        serde_json::to_string_pretty(&json!({
            "id": id,
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": now,
            "data": { "object": object },
            "livemode": false,
            "type": kind,
        }))
        .expect("a JSON value serialises")
    };
    let invoice = event(
        "evt_rust_invoice",
        "invoice.paid",
        json!({ "id": "in_rust", "object": "invoice", "amount_paid": 2900, "currency": "usd" }),
    );
    let checkout = event(
        "evt_rust_checkout",
        "checkout.session.completed",
        json!({ "id": "cs_test_rust", "customer_details": { "name": "Zoë 東京 🚀" } }),
    );
    let signed = |body: &str, secret: &str, at: i64| sign(body.as_bytes(), secret, at);
    let v1 = |body: &str, secret: &str| {
        signed(body, secret, now)
            .split_once(",v1=")
            .map(|(_, signature)| signature.to_owned())
            .expect("sign writes a v1 signature")
    };
    vec![
        OurCase {
            name: "valid",
            header: signed(&invoice, SECRET, now),
            body: invoice.clone(),
            secret: SECRET,
            accepted: true,
        },
        OurCase {
            name: "valid_utf8",
            header: signed(&checkout, SECRET, now),
            body: checkout.clone(),
            secret: SECRET,
            accepted: true,
        },
        OurCase {
            name: "valid_within_tolerance",
            header: signed(&invoice, SECRET, now - 240),
            body: invoice.clone(),
            secret: SECRET,
            accepted: true,
        },
        OurCase {
            name: "tampered",
            header: signed(&invoice, SECRET, now),
            body: invoice.replace("2900", "2901"),
            secret: SECRET,
            accepted: false,
        },
        OurCase {
            name: "stale",
            header: signed(&invoice, SECRET, now - 600),
            body: invoice.clone(),
            secret: SECRET,
            accepted: false,
        },
        OurCase {
            name: "wrong_secret",
            header: signed(&invoice, OTHER_SECRET, now),
            body: invoice.clone(),
            secret: SECRET,
            accepted: false,
        },
        OurCase {
            name: "rolling_secrets",
            header: format!("t={now},v1={},v1={}", v1(&invoice, OTHER_SECRET), v1(&invoice, SECRET)),
            body: invoice.clone(),
            secret: SECRET,
            accepted: true,
        },
        OurCase {
            name: "v0_only",
            header: format!("t={now},v0={}", v1(&invoice, SECRET)),
            body: invoice.clone(),
            secret: SECRET,
            accepted: false,
        },
        OurCase {
            name: "no_timestamp",
            header: format!("v1={}", v1(&invoice, SECRET)),
            body: invoice.clone(),
            secret: SECRET,
            accepted: false,
        },
    ]
}

#[test]
fn the_sdk_accepts_exactly_the_deliveries_we_sign_and_accept() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).expect("the clock is sane"))
        .expect("the clock is after 1970");
    let cases = our_cases(now);
    let request = json!({
        "tolerance": DEFAULT_TOLERANCE_SECS,
        "cases": cases.iter().map(|case| json!({
            "name": case.name,
            "body": case.body,
            "header": case.header,
            "secret": case.secret,
        })).collect::<Vec<_>>(),
    });

    let SdkResults { sdk_version, results } = run_script("verify", Some(request.to_string()));

    assert_eq!(results.len(), cases.len());
    let mut disagreements = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        assert_eq!(case.name, result.name);
        let ours = verify(&case.header, case.body.as_bytes(), case.secret, now, DEFAULT_TOLERANCE_SECS);
        if ours.is_ok() != case.accepted {
            disagreements.push(format!("{}: we expected {} but got {ours:?}", case.name, case.accepted));
        }
        disagreements.extend(disagreement(case.name, &ours, &case.body, &result.verdict));
    }
    assert!(
        disagreements.is_empty(),
        "stripe {sdk_version} and we disagree on what we signed:\n{}",
        disagreements.join("\n")
    );
}
