#!/usr/bin/env bash
# Coverage-guided fuzzing of rvswitch's untrusted-input parsers with afl.rs, which builds on stable
# Rust (cargo-fuzz needs nightly). Each target runs for a bounded time from the committed seeds in
# fuzz/corpus/TARGET; findings go to fuzz/out/TARGET (not committed).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target
#
# Exit 1 if any target found a crash (each crashing input's path is printed; replay one with
# `cd fuzz && cargo run --bin replay -- TARGET PATH`). Hangs are reported but do not fail the run.
# Installs cargo-afl (which builds AFL++ from source with the C compiler) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ovsdb ovsdb_ops config frames zones wgquick l3)

if ! cargo afl --version >/dev/null 2>&1; then
  t0=$SECONDS
  cargo install cargo-afl --version 0.18.2 --locked
  echo "fuzz: cargo-afl (with AFL++) installed in $((SECONDS - t0)) s"
fi

t0=$SECONDS
cargo afl build --release --locked --features afl --bins
echo "fuzz: instrumented build in $((SECONDS - t0)) s"

# No CPU frequency governor tuning, no core_pattern change (we are not the machine's owner), no
# CPU pinning (the machine is shared), no curses UI in a CI log.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1

crashed=0
for t in "${targets[@]}"; do
  out="out/$t"
  rm -rf "$out"
  mkdir -p "$out"
  echo "fuzz: $t for ${secs} s"
  # -V: stop after that many seconds; -t: a single input may take 1 s before it counts as a hang;
  # -x: the target's tokens (JSON/OVSDB or TOML keywords, made by fuzz/scripts/make-seeds.py).
  dict=()
  [ -e "dict/$t.dict" ] && dict=(-x "dict/$t.dict")
  if ! cargo afl fuzz -i "corpus/$t" -o "$out" "${dict[@]}" -V "$secs" -t 1000 "target/release/fuzz_$t" \
    >"$out/afl.log" 2>&1; then
    tail -20 "$out/afl.log"
    echo "fuzz: afl-fuzz failed for $t (log: fuzz/$out/afl.log)"
    exit 1
  fi
  stats="$out/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  echo "fuzz: $t: $(get execs_done) execs ($(get execs_per_sec)/s), corpus $(get corpus_count)," \
    "edges $(get edges_found)/$(get total_edges) ($(get bitmap_cvg)), crashes $(get saved_crashes)," \
    "hangs $(get saved_hangs)"
  for f in "$out"/default/crashes/id:*; do
    [ -e "$f" ] || continue
    echo "fuzz: CRASH in $t: fuzz/$f"
    crashed=1
  done
done
exit "$crashed"
