#!/usr/bin/env python3
"""Which tables and indexes a SQLite namespace's write transactions dirty, read from its WAL.

    python3 bench/wal_frames.py DATA_DIR NAMESPACE      # e.g. the desk benchmark's server: /proc/PID/cwd, inbox

Every page a transaction changes is written to the WAL once per commit (a frame, two pwrite calls), then
copied into the database file by a checkpoint: frames per transaction, and which b-trees they belong to,
say where a workload's write volume comes from. Copy DATA_DIR/NAMESPACE.db and .db-wal while the server
runs (the WAL starts over after each checkpoint round, so a copy holds the last round's transactions).
Pages are attributed with SQLite's `dbstat` on the copied database file; pages allocated after it was
copied are shown as `(new)`: tables growing at their end.
"""

import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile


def frames(wal: bytes):
    """(page number, whether the frame commits a transaction) for each frame of the WAL's current round."""
    _magic, _version, page_size, _seq, salt1, salt2 = struct.unpack(">IIIIII", wal[:24])
    offset = 32
    while offset + 24 + page_size <= len(wal):
        page, commit_size, frame_salt1, frame_salt2 = struct.unpack(">IIII", wal[offset : offset + 16])
        if (frame_salt1, frame_salt2) != (salt1, salt2):
            return  # the rest is left over from an earlier round
        yield page, commit_size != 0
        offset += 24 + page_size


def owners(database: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "copy.db")
        shutil.copy(database, copy)  # without its WAL: the pages as the database file has them
        connection = sqlite3.connect(copy)
        try:
            return dict((page, name) for name, page in connection.execute("select name, pageno from dbstat"))
        finally:
            connection.close()


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data_dir, namespace = sys.argv[1], sys.argv[2]
    with open(os.path.join(data_dir, f"{namespace}.db-wal"), "rb") as file:
        wal = file.read()
    owner = owners(os.path.join(data_dir, f"{namespace}.db"))
    transactions, current = [], []
    for page, commits in frames(wal):
        current.append(owner.get(page, "(new)"))
        if commits:
            transactions.append(current)
            current = []
    if not transactions:
        sys.exit("no committed transaction in the WAL's current round")
    sizes = sorted(len(t) for t in transactions)
    print(
        f"{namespace}: {len(transactions)} transactions, {sum(sizes)} frames; frames per transaction: "
        f"median {sizes[len(sizes) // 2]}, max {sizes[-1]}"
    )
    per_btree = collections.Counter(name for t in transactions for name in t)
    for name, count in per_btree.most_common():
        print(f"  {count / len(transactions):7.1f} per transaction  {name}")


if __name__ == "__main__":
    main()
