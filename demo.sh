#!/usr/bin/env bash
# Builds rvswitch and runs the demo: two zones of namespace "VMs", who can reach whom. Needs root.
# Installs iproute2 and ping first if this machine lacks them (Debian).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh creates network namespaces and links: run it as root" >&2
  exit 1
fi
if ! command -v ip >/dev/null || ! command -v ping >/dev/null; then
  echo "== installing iproute2 and iputils-ping"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iputils-ping >/dev/null
fi
echo "== building (cargo build --release)"
cargo build --release --quiet -p vswitchd -p ctl --bins --examples
exec "${CARGO_TARGET_DIR:-target}/release/examples/demo"
