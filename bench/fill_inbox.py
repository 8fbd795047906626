#!/usr/bin/env python3
"""Fills a migrated, empty inbox namespace (a SQLite file) with one account's help desk: an API inbox,
CONVERSATIONS customers, each with a conversation, and MESSAGES messages in all, short Japanese sentences,
a tenth of them agents' replies.

    python3 bench/fill_inbox.py DATA_DIR/inbox.db MESSAGES [CONVERSATIONS]

Written straight to the file (a million messages through the API would take the benchmark minutes of
ingest); the rows are shaped as the inbox service writes them (version-7, time-ordered ids). The search index is left empty: a move
between engines rebuilds it at the target from these rows, and `bench/data_move.sh` measures that apart.
"""

import os
import sqlite3
import sys
import time
import uuid


def uuid7(ms: int) -> str:
    """A version-7 UUID for the instant `ms` (Unix milliseconds), as the services make their ids: time
    ordered, so that rows written later sort later by key."""
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122 variant
    return str(uuid.UUID(int=value))

LINES = [
    "注文した商品がまだ届きません。確認をお願いします。",
    "返品の手続きを教えてください。",
    "領収書を発行していただけますか。",
    "サイズを交換したいのですが可能でしょうか。",
    "ログインできなくなりました。",
    "配送先の住所を変更したいです。",
    "請求額が間違っているようです。",
    "在庫の入荷予定はありますか。",
]


def main() -> None:
    path, messages = sys.argv[1], int(sys.argv[2])
    conversations = int(sys.argv[3]) if len(sys.argv) > 3 else max(1, messages // 100)
    db = sqlite3.connect(path)
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = normal")
    (existing,) = db.execute("select count(*) from messages").fetchone()
    if existing:
        sys.exit(f"{path} already has {existing} messages")
    account, inbox = uuid7(int(time.time() * 1000)), uuid7(int(time.time() * 1000))
    start = int(time.time() * 1000) - messages * 10
    with db:
        db.execute(
            "insert into inboxes (id, account_id, name, channel, identifier, callback_url, created_at, updated_at)"
            " values (?, ?, 'Website API', 'api', ?, null, ?, ?)",
            (inbox, account, uuid.uuid4().hex, start, start),
        )
        contacts = [uuid7(start + n) for n in range(conversations)]
        threads = [uuid7(start + n) for n in range(conversations)]
        db.executemany(
            "insert into contacts (id, account_id, name, email, phone, created_at, updated_at)"
            " values (?, ?, ?, ?, null, ?, ?)",
            ((c, account, f"顧客 {n}", f"customer{n}@example.jp", start, start) for n, c in enumerate(contacts)),
        )
        db.executemany(
            "insert into contact_identities (inbox_id, source_id, account_id, contact_id, created_at)"
            " values (?, ?, ?, ?, ?)",
            ((inbox, f"customer-{n}", account, c, start) for n, c in enumerate(contacts)),
        )
        last = start + messages * 10
        db.executemany(
            "insert into conversations (id, account_id, inbox_id, contact_id, display_id, status, priority,"
            " unread_count, last_message_at, last_message_preview, last_message_kind, created_at, updated_at)"
            " values (?, ?, ?, ?, ?, 'open', 'none', 0, ?, ?, 'incoming', ?, ?)",
            (
                (t, account, inbox, contacts[n], n + 1, last, LINES[n % len(LINES)], start, last)
                for n, t in enumerate(threads)
            ),
        )

        def rows():
            for n in range(messages):
                outgoing = n % 10 == 9
                yield (
                    uuid7(start + n * 10),
                    account,
                    threads[n % conversations],
                    "outgoing" if outgoing else "incoming",
                    f"{LINES[n % len(LINES)]}（{n}）",
                    None,
                    "sent" if outgoing else None,
                    start + n * 10,
                )

        db.executemany(
            "insert into messages (id, account_id, conversation_id, kind, content, sender_id, attributes,"
            " delivery_status, delivery_error, created_at) values (?, ?, ?, ?, ?, ?, null, ?, null, ?)",
            rows(),
        )
    db.execute("pragma wal_checkpoint(truncate)")
    print(f"{path}: {conversations} conversations, {messages} messages")


if __name__ == "__main__":
    main()
