-- A signature is accepted once per inbox. A signature covers the body and its timestamp, not the
-- Idempotency-Key, so without this a request captured in transit could be sent again under a new key
-- within the signature's tolerance (300 s) and be recorded twice. signed_at is the signature's
-- timestamp (unix seconds) on the signed route, null for widget posts (which are not signed); with
-- body_sha256 it identifies the signature, and the unique index refuses it a second time even when
-- two copies race on two replicas. Null timestamps never collide.
alter table inbound_events add column signed_at bigint;

create unique index inbound_events_by_signature on inbound_events (inbox_id, body_sha256, signed_at);
