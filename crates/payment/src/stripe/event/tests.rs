use serde_json::json;

use super::*;

const ACCOUNT: &str = "0190a8c4-7b1e-7c3a-9f2d-3e4b5c6d7e8f";

fn account() -> Option<AccountId> {
    uuid::Uuid::parse_str(ACCOUNT).ok().map(AccountId)
}

fn envelope(kind: &str, object: Value) -> Vec<u8> {
    json!({
        "id": "evt_1PqXyZ2eZvKYlo2C0abcdef",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": 1_722_000_000,
        "data": { "object": object, "previous_attributes": {} },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string()
    .into_bytes()
}

fn typed(kind: &str, object: Value) -> TypedEvent {
    let event = WebhookEvent::parse(&envelope(kind, object));
    match event.and_then(|event| event.typed()) {
        Ok(typed) => typed,
        Err(error) => panic!("{kind} did not parse: {error}"),
    }
}

#[test]
fn an_event_envelope_parses_into_id_type_created_and_object() {
    let body = envelope("invoice.paid", json!({ "id": "in_1", "object": "invoice" }));

    let event = WebhookEvent::parse(&body);

    assert_eq!(
        event.ok(),
        Some(WebhookEvent {
            id: "evt_1PqXyZ2eZvKYlo2C0abcdef".to_owned(),
            kind: "invoice.paid".to_owned(),
            created: 1_722_000_000,
            object: json!({ "id": "in_1", "object": "invoice" }),
        })
    );
}

#[test]
fn a_body_that_is_not_json_is_a_body_error() {
    let result = WebhookEvent::parse(b"<html>not an event</html>");

    assert!(matches!(result, Err(EventError::Body(_))), "{result:?}");
}

#[test]
fn an_event_without_a_type_or_object_is_a_body_error() {
    let bodies = [
        json!({ "id": "evt_1", "created": 1, "data": { "object": {} } }),
        json!({ "id": "evt_1", "type": "invoice.paid", "created": 1, "data": {} }),
        json!({ "id": "evt_1", "type": "invoice.paid", "created": 1, "data": { "object": "in_1" } }),
        json!({ "type": "invoice.paid", "created": 1, "data": { "object": {} } }),
        json!({ "id": "evt_1", "type": "invoice.paid", "created": "yesterday", "data": { "object": {} } }),
    ];

    for body in bodies {
        let result = WebhookEvent::parse(body.to_string().as_bytes());
        assert!(matches!(result, Err(EventError::Body(_))), "{body}: {result:?}");
    }
}

#[test]
fn a_completed_checkout_session_names_customer_subscription_account_and_plan() {
    let object = json!({
        "id": "cs_test_a1b2c3",
        "object": "checkout.session",
        "client_reference_id": ACCOUNT,
        "customer": "cus_QxYz123",
        "metadata": { "plan": "pro", "account_id": ACCOUNT },
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "subscription": "sub_1PqXyZ",
        "url": null,
    });

    let event = typed("checkout.session.completed", object);

    assert_eq!(
        event,
        TypedEvent::CheckoutSessionCompleted(CheckoutSessionCompleted {
            id: "cs_test_a1b2c3".to_owned(),
            customer: Some("cus_QxYz123".to_owned()),
            subscription: Some("sub_1PqXyZ".to_owned()),
            client_reference_id: Some(ACCOUNT.to_owned()),
            account: account(),
            plan: Some("pro".to_owned()),
        })
    );
}

#[test]
fn a_checkout_session_without_our_reference_has_no_account() {
    let object = json!({
        "id": "cs_test_payment_link",
        "object": "checkout.session",
        "client_reference_id": "order-42",
        "customer": null,
        "metadata": {},
        "subscription": null,
    });

    let TypedEvent::CheckoutSessionCompleted(session) = typed("checkout.session.completed", object) else {
        panic!("not a completed checkout session");
    };

    assert_eq!(session.account, None);
    assert_eq!(session.client_reference_id.as_deref(), Some("order-42"));
    assert_eq!(session.plan, None);
}

#[test]
fn expanded_references_yield_their_ids() {
    let object = json!({
        "id": "cs_test_expanded",
        "client_reference_id": ACCOUNT,
        "customer": { "id": "cus_expanded", "object": "customer", "email": "a@example.com" },
        "subscription": { "id": "sub_expanded", "object": "subscription", "status": "active" },
        "metadata": null,
    });

    let TypedEvent::CheckoutSessionCompleted(session) = typed("checkout.session.completed", object) else {
        panic!("not a completed checkout session");
    };

    assert_eq!(session.customer.as_deref(), Some("cus_expanded"));
    assert_eq!(session.subscription.as_deref(), Some("sub_expanded"));
}

/// An invoice as API versions since 2025-03-31 (basil) deliver it.
fn basil_invoice() -> Value {
    json!({
        "id": "in_1PqBasil",
        "object": "invoice",
        "amount_due": 2900,
        "amount_paid": 2900,
        "amount_remaining": 0,
        "billing_reason": "subscription_cycle",
        "currency": "usd",
        "customer": "cus_QxYz123",
        "lines": {
            "object": "list",
            "data": [{
                "id": "il_1PqBasil",
                "object": "line_item",
                "amount": 2900,
                "metadata": { "plan": "pro", "account_id": ACCOUNT },
                "parent": {
                    "subscription_item_details": {
                        "subscription": "sub_1PqBasil",
                        "subscription_item": "si_Qx",
                        "proration": false
                    },
                    "type": "subscription_item_details"
                },
                "period": { "end": 1_724_678_400, "start": 1_722_000_000 },
            }],
            "has_more": false,
            "url": "/v1/invoices/in_1PqBasil/lines"
        },
        "metadata": {},
        "parent": {
            "quote_details": null,
            "subscription_details": {
                "metadata": { "plan": "pro", "account_id": ACCOUNT },
                "subscription": "sub_1PqBasil"
            },
            "type": "subscription_details"
        },
        "period_end": 1_722_000_000,
        "period_start": 1_719_321_600,
        "status": "paid",
    })
}

/// An invoice as API versions before basil deliver it.
fn legacy_invoice() -> Value {
    json!({
        "id": "in_1PqLegacy",
        "object": "invoice",
        "amount_due": 9900,
        "amount_paid": 0,
        "currency": "eur",
        "customer": "cus_Legacy",
        "lines": {
            "object": "list",
            "data": [{
                "id": "il_1PqLegacy",
                "object": "line_item",
                "metadata": {},
                "period": { "end": 1_700_086_400, "start": 1_697_408_000 },
                "subscription": "sub_1PqLegacy",
                "type": "subscription",
            }],
            "has_more": false
        },
        "metadata": {},
        "status": "open",
        "subscription": "sub_1PqLegacy",
        "subscription_details": { "metadata": { "plan": "business", "account_id": ACCOUNT } },
    })
}

#[test]
fn a_paid_basil_invoice_reads_subscription_and_plan_from_its_parent() {
    let event = typed("invoice.paid", basil_invoice());

    assert_eq!(
        event,
        TypedEvent::InvoicePaid(Invoice {
            id: "in_1PqBasil".to_owned(),
            customer: Some("cus_QxYz123".to_owned()),
            subscription: Some("sub_1PqBasil".to_owned()),
            amount_paid: 2900,
            amount_due: 2900,
            currency: "usd".to_owned(),
            status: Some("paid".to_owned()),
            period_end: Some(1_724_678_400),
            plan: Some("pro".to_owned()),
            account: account(),
        })
    );
}

#[test]
fn a_failed_legacy_invoice_reads_subscription_and_plan_from_the_top_level() {
    let event = typed("invoice.payment_failed", legacy_invoice());

    assert_eq!(
        event,
        TypedEvent::InvoicePaymentFailed(Invoice {
            id: "in_1PqLegacy".to_owned(),
            customer: Some("cus_Legacy".to_owned()),
            subscription: Some("sub_1PqLegacy".to_owned()),
            amount_paid: 0,
            amount_due: 9900,
            currency: "eur".to_owned(),
            status: Some("open".to_owned()),
            period_end: Some(1_700_086_400),
            plan: Some("business".to_owned()),
            account: account(),
        })
    );
}

#[test]
fn an_invoice_period_end_comes_from_the_first_line_not_the_invoice() {
    let TypedEvent::InvoicePaid(invoice) = typed("invoice.paid", basil_invoice()) else {
        panic!("not a paid invoice");
    };

    assert_eq!(invoice.period_end, Some(1_724_678_400));
}

#[test]
fn an_invoice_falls_back_to_line_metadata_and_line_subscription() {
    let mut object = basil_invoice();
    object["parent"] = Value::Null;

    let TypedEvent::InvoicePaid(invoice) = typed("invoice.paid", object) else {
        panic!("not a paid invoice");
    };

    assert_eq!(invoice.plan.as_deref(), Some("pro"));
    assert_eq!(invoice.account, account());
    assert_eq!(invoice.subscription.as_deref(), Some("sub_1PqBasil"));
}

#[test]
fn invoice_metadata_wins_over_the_subscription_snapshot() {
    let mut object = basil_invoice();
    object["metadata"] = json!({ "plan": "starter" });

    let TypedEvent::InvoicePaid(invoice) = typed("invoice.paid", object) else {
        panic!("not a paid invoice");
    };

    assert_eq!(invoice.plan.as_deref(), Some("starter"));
    assert_eq!(invoice.account, account());
}

#[test]
fn a_one_off_invoice_has_no_subscription_period_or_plan() {
    let object = json!({
        "id": "in_one_off",
        "object": "invoice",
        "amount_due": 500,
        "amount_paid": 500,
        "currency": "jpy",
        "customer": "cus_1",
        "lines": { "object": "list", "data": [], "has_more": false },
        "metadata": null,
        "parent": null,
        "status": "paid",
    });

    let TypedEvent::InvoicePaid(invoice) = typed("invoice.paid", object) else {
        panic!("not a paid invoice");
    };

    assert_eq!(invoice.subscription, None);
    assert_eq!(invoice.period_end, None);
    assert_eq!(invoice.plan, None);
    assert_eq!(invoice.account, None);
}

#[test]
fn an_invoice_without_amounts_is_an_object_error_naming_the_event_type() {
    let result = WebhookEvent::parse(&envelope(
        "invoice.paid",
        json!({ "id": "in_1", "currency": "usd", "customer": "cus_1", "status": "paid" }),
    ))
    .and_then(|event| event.typed());

    match result {
        Err(EventError::Object { kind, source }) => {
            assert_eq!(kind, "invoice.paid");
            assert!(source.to_string().contains("amount_paid"), "{source}");
        }
        other => panic!("expected an object error, got {other:?}"),
    }
}

#[test]
fn a_basil_subscription_takes_its_period_end_from_the_latest_item() {
    let object = json!({
        "id": "sub_1PqBasil",
        "object": "subscription",
        "customer": "cus_QxYz123",
        "items": {
            "object": "list",
            "data": [
                { "id": "si_1", "current_period_end": 1_724_678_400, "current_period_start": 1_722_000_000 },
                { "id": "si_2", "current_period_end": 1_753_536_000, "current_period_start": 1_722_000_000 },
            ],
            "has_more": false
        },
        "metadata": { "plan": "pro", "account_id": ACCOUNT },
        "status": "active",
    });

    let event = typed("customer.subscription.updated", object);

    assert_eq!(
        event,
        TypedEvent::SubscriptionUpdated(Subscription {
            id: "sub_1PqBasil".to_owned(),
            customer: "cus_QxYz123".to_owned(),
            status: "active".to_owned(),
            current_period_end: Some(1_753_536_000),
            plan: Some("pro".to_owned()),
            account: account(),
        })
    );
}

#[test]
fn a_legacy_subscription_uses_its_own_period_end() {
    let object = json!({
        "id": "sub_legacy",
        "object": "subscription",
        "current_period_end": 1_700_086_400,
        "customer": "cus_Legacy",
        "items": { "object": "list", "data": [{ "id": "si_1" }] },
        "metadata": {},
        "status": "canceled",
    });

    let event = typed("customer.subscription.deleted", object);

    assert_eq!(
        event,
        TypedEvent::SubscriptionDeleted(Subscription {
            id: "sub_legacy".to_owned(),
            customer: "cus_Legacy".to_owned(),
            status: "canceled".to_owned(),
            current_period_end: Some(1_700_086_400),
            plan: None,
            account: None,
        })
    );
}

#[test]
fn an_event_type_we_do_not_handle_is_returned_by_name() {
    let event = typed("charge.refunded", json!({ "id": "ch_1", "object": "charge" }));

    assert_eq!(event, TypedEvent::Unhandled("charge.refunded".to_owned()));
}
