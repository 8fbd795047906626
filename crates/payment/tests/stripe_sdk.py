#!/usr/bin/env python3
"""Stripe's official Python SDK as the judge of our webhook signatures (driven by tests/stripe_sdk.rs).

Two modes, both printing one JSON document on stdout:

  stripe_sdk.py cases    Signs a set of webhook deliveries the way the SDK computes signatures, spoils some
                         of them (tampered body, stale timestamp, wrong secret, malformed headers), and
                         records the SDK's own verdict on each from stripe.Webhook.construct_event.
  stripe_sdk.py verify   Reads {"tolerance": N, "cases": [{"name", "body", "header", "secret"}]} from stdin
                         (deliveries signed by our Rust code) and records the SDK's verdict on each.

A verdict is {"accepted": bool, "reason": str|null, "message": str|null, "event_id", "event_type"}, where
reason is one of "malformed", "no_matching_signature", "stale" (mapped from the SDK's error messages) or
"other" for a message this script does not know, so that a new SDK wording degrades to comparing
accept/reject only rather than to a wrong comparison.

Exit status 3 with a message on stderr when the stripe package is missing.
"""

import json
import sys
import time

try:
    import stripe
except ImportError:
    sys.stderr.write(
        "Stripe's Python SDK is not installed: run `pip install stripe`.\n"
    )
    sys.exit(3)

TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE
SECRET = "whsec_omnidesk_cross_check_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OTHER_SECRET = "whsec_someone_else_00112233445566778899aabbccddeeff"


def signature(payload, secret, timestamp):
    """The v1 signature, computed by the SDK, through its public helper where this version has one."""
    helper = getattr(stripe.WebhookSignature, "generate_signature_header", None)
    if helper is not None:
        header = helper(payload, secret, timestamp=timestamp)
        return header.split(",v1=", 1)[1]
    return stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)


def reason_of(message):
    known = [
        ("No Stripe-Signature header", "malformed"),
        ("Unable to extract timestamp and signatures", "malformed"),
        ("No signatures found with expected scheme", "malformed"),
        ("No signatures found matching the expected signature", "no_matching_signature"),
        ("Timestamp outside the tolerance zone", "stale"),
    ]
    for prefix, reason in known:
        if message.startswith(prefix):
            return reason
    return "other"


def verdict(body, header, secret, tolerance):
    try:
        event = stripe.Webhook.construct_event(body, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as error:
        message = str(error)
        return {
            "accepted": False,
            "reason": reason_of(message),
            "message": message,
            "event_id": None,
            "event_type": None,
        }
    return {
        "accepted": True,
        "reason": None,
        "message": None,
        "event_id": event.id,
        "event_type": event.type,
    }


def bodies(now):
    """Webhook bodies as Stripe sends them (pretty-printed), plus compact and non-ASCII variants: the
    signature covers the raw bytes, so whitespace and UTF-8 must survive exactly."""
    invoice_paid = {
        "id": "evt_1PqCrossCheckInvoice",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": now,
        "data": {
            "object": {
                "id": "in_1PqCrossCheck",
                "object": "invoice",
                "amount_due": 2900,
                "amount_paid": 2900,
                "currency": "usd",
                "customer": "cus_CrossCheck",
                "status": "paid",
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "invoice.paid",
    }
    checkout = {
        "id": "evt_1PqCrossCheckCheckout",
        "object": "event",
        "created": now,
        "data": {
            "object": {
                "id": "cs_test_crosscheck",
                "object": "checkout.session",
                "client_reference_id": "0190a8c4-7b1e-7c3a-9f2d-3e4b5c6d7e8f",
                "customer_details": {"name": "Zoë Łukasiewicz 東京 🚀"},
                "metadata": {"plan": "pro"},
            }
        },
        "type": "checkout.session.completed",
    }
    return [
        ("pretty", json.dumps(invoice_paid, indent=2) + "\n"),
        ("compact", json.dumps(invoice_paid, separators=(",", ":"))),
        ("utf8", json.dumps(checkout, indent=2, ensure_ascii=False)),
    ]


def tamper(body):
    """The same body with one amount changed, as an attacker would."""
    changed = body.replace("2900", "2901", 1)
    if changed == body:
        changed = body.replace('"pro"', '"business"', 1)
    assert changed != body
    return changed


def make_cases():
    now = int(time.time())
    cases = []

    def case(name, body, header, secret=SECRET):
        cases.append(
            {
                "name": name,
                "body": body,
                "header": header,
                "secret": secret,
                "sdk": verdict(body, header, secret, TOLERANCE),
            }
        )

    for label, body in bodies(now):
        good = signature(body, SECRET, now)
        case(f"{label}/valid", body, f"t={now},v1={good}")
        case(f"{label}/tampered", tamper(body), f"t={now},v1={good}")
        stale = now - 600
        case(f"{label}/stale", body, f"t={stale},v1={signature(body, SECRET, stale)}")
        case(f"{label}/wrong_secret", body, f"t={now},v1={signature(body, OTHER_SECRET, now)}")

    label, body = bodies(now)[0]
    good = signature(body, SECRET, now)
    old = signature(body, OTHER_SECRET, now)
    case("rolling_secrets/one_of_two_v1_matches", body, f"t={now},v1={old},v1={good}")
    case("rolling_secrets/the_match_comes_first", body, f"t={now},v1={good},v1={old}")
    case("schemes/v0_is_ignored", body, f"t={now},v1={good},v0={old}")
    case("schemes/a_match_under_v0_only", body, f"t={now},v0={good}")
    case("schemes/a_match_under_v0_and_a_wrong_v1", body, f"t={now},v0={good},v1={old}")
    case("schemes/upper_case_hex", body, f"t={now},v1={good.upper()}")
    case("schemes/truncated_signature", body, f"t={now},v1={good[:32]}")
    case("malformed/empty_header", body, "")
    case("malformed/no_timestamp", body, f"v1={good}")
    case("malformed/non_numeric_timestamp", body, f"t=yesterday,v1={good}")
    case("malformed/no_signature", body, f"t={now}")
    case("malformed/garbage", body, "not a stripe signature")
    case("signed_before/the_body_was_reserialised", json.dumps(json.loads(body)), f"t={now},v1={good}")
    case("secrets/signed_with_the_other_secret_verified_with_it", body, f"t={now},v1={old}", OTHER_SECRET)

    return {
        "sdk_version": stripe.VERSION,
        "now": now,
        "tolerance": TOLERANCE,
        "cases": cases,
    }


def verify_cases(request):
    tolerance = request.get("tolerance", TOLERANCE)
    results = []
    for case in request["cases"]:
        result = verdict(case["body"], case["header"], case["secret"], tolerance)
        result["name"] = case["name"]
        results.append(result)
    return {"sdk_version": stripe.VERSION, "results": results}


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "cases"
    if mode == "cases":
        output = make_cases()
    elif mode == "verify":
        output = verify_cases(json.load(sys.stdin))
    else:
        sys.stderr.write(f"unknown mode {mode!r}; use `cases` or `verify`\n")
        return 2
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
