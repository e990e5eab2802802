#!/usr/bin/env bash
# Builds the Debian package and proves it installs on this Debian 12 machine with apt, that the
# installed daemon runs and its man pages are found, then purges it so the machine is left as it
# was. Refuses to touch an rvswitch package someone installed already. Every step is bounded in
# time; CI gives the whole script 30 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
target="${CARGO_TARGET_DIR:-target}"

if dpkg-query -W -f='${Status}' rvswitch 2>/dev/null | grep -q ' installed'; then
  echo "package-test: rvswitch is installed on this machine already; not replacing it (a test run that was killed may have left it: apt-get purge rvswitch)" >&2
  exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package-test: installing cargo-deb"
  start=$SECONDS
  timeout 900 cargo install cargo-deb --locked --version 3.8.0
  echo "package-test: cargo-deb installed in $((SECONDS - start)) s"
fi

start=$SECONDS
deb="$(timeout 1200 scripts/package.sh | tail -n 1)"
echo "package-test: built $deb in $((SECONDS - start)) s"

tmp="$(mktemp -d)"
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  timeout 120 apt-get purge -y -qq rvswitch >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

timeout 300 apt-get install -y -qq --no-install-recommends "./$deb" >/dev/null
version="$(dpkg-query -W -f='${Version}' rvswitch)"
/usr/sbin/rvswitchd --version | grep -qx "rvswitchd ${version%-*}"
/usr/bin/rvsctl --version
man -w rvswitchd
man -w rvsctl
man -w rvsctl-show
man -P cat rvswitchd 2>/dev/null | grep -q -- '--ovs-compat'
# bash-completion loads the installed script by the command's name; it must define the function.
bash -c 'source /usr/share/bash-completion/completions/rvsctl && complete -p rvsctl' | grep -q -- '-F _rvsctl'
dpkg-query -W -f='${Conffiles}\n' rvswitch | grep -q '/etc/rvswitch/rvswitch.toml'
unit=/lib/systemd/system/rvswitchd.service
said="$(systemd-analyze verify --man=no "$unit" 2>&1)" || { echo "$said" >&2; exit 1; }
[ -z "$said" ] || { echo "package-test: systemd-analyze verify $unit: $said" >&2; exit 1; }

# The installed daemon starts on the shipped config and answers rvsctl (private paths, so a
# running switch on this machine is not disturbed).
/usr/sbin/rvswitchd --config /etc/rvswitch/rvswitch.toml --db-file "$tmp/conf.db" \
  --db-socket "$tmp/db.sock" --control-socket "$tmp/ctl.sock" 2>"$tmp/log" &
daemon=$!
for _ in $(seq 100); do
  /usr/bin/rvsctl --socket "$tmp/ctl.sock" show >/dev/null 2>&1 && break
  sleep 0.1
done
/usr/bin/rvsctl --socket "$tmp/ctl.sock" show >/dev/null || { cat "$tmp/log" >&2; exit 1; }
kill -TERM "$daemon"
timeout 20 tail --pid="$daemon" -f /dev/null
wait "$daemon" || { echo "package-test: rvswitchd exited non-zero" >&2; cat "$tmp/log" >&2; exit 1; }
daemon=""

timeout 120 apt-get purge -y -qq rvswitch >/dev/null
for gone in /usr/sbin/rvswitchd /usr/bin/rvsctl /etc/rvswitch /usr/share/bash-completion/completions/rvsctl "$unit"; do
  [ ! -e "$gone" ] || { echo "package-test: $gone left after purge" >&2; exit 1; }
done
echo "package-test: install, run, man pages, completions, unit verify, purge: all good ($((SECONDS)) s in total)"
