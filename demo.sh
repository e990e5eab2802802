#!/usr/bin/env bash
# Builds rvswitch and runs the demo: two zones of namespace "VMs", who can reach whom. Needs root.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet -p vswitchd -p ctl --bins --examples
exec "${CARGO_TARGET_DIR:-target}/release/examples/demo"
