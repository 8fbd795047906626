#!/usr/bin/env bash
# The agent console's figures (docs/benchmarks.md): first-load size, load and time to interactive of the
# inbox with 1,000 conversations, and the list update latency from a signed post to its row in the page.
# Headless Chromium (Debian's) driven by playwright-core against the release binary's monolith; the
# figures are printed and kept in target/e2e/console-perf.json. CONVERSATIONS, RUNS and POSTS change the
# load (defaults 1000, 5, 20).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin omnidesk
[ -d web/node_modules ] || npm --prefix web ci --no-audit --no-fund
OMNIDESK_PERF=1 npm --prefix web run e2e --silent
