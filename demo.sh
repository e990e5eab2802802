#!/usr/bin/env bash
# Builds rvswitch and runs the demo: two zones of namespace "VMs", who can reach whom. Needs root.
# Installs iproute2, ping, wireguard-go and wg (the VPN act's office server) first if this machine
# lacks them (Debian).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh creates network namespaces and links: run it as root" >&2
  exit 1
fi
missing=()
for p in ip:iproute2 ping:iputils-ping wireguard-go:wireguard-go wg:wireguard-tools; do
  command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "== building (cargo build --release)"
cargo build --release --quiet -p vswitchd -p ctl --bins --examples
exec "${CARGO_TARGET_DIR:-target}/release/examples/demo"
