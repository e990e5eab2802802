#!/usr/bin/env bash
# Builds the Debian package target/debian/rvswitch_VERSION-1_ARCH.deb: release binaries of
# rvswitchd and rvsctl, rvsctl's shell completions, their man pages (printed by the binaries from their own clap
# definitions), then cargo-deb with the metadata in crates/vswitchd/Cargo.toml. Prints the path
# of the .deb on the last line. Needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --locked -p vswitchd -p ctl
rm -rf "$target/release/man"
"$target/release/rvswitchd" --generate-man "$target/release/man"
"$target/release/rvsctl" generate-man "$target/release/man" >/dev/null
gzip -9n "$target"/release/man/*.8
rm -rf "$target/release/completions" && mkdir -p "$target/release/completions"
"$target/release/rvsctl" completions bash > "$target/release/completions/rvsctl"
"$target/release/rvsctl" completions zsh > "$target/release/completions/_rvsctl"
"$target/release/rvsctl" completions fish > "$target/release/completions/rvsctl.fish"
rm -rf "$target/debian"
# --strip: the release profile keeps line tables for backtraces in development; the package
# ships lean binaries.
cargo deb -p vswitchd --no-build --locked --quiet --strip
ls "$target"/debian/rvswitch_*.deb
