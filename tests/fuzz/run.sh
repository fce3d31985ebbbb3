#!/usr/bin/env bash
# Runs every libFuzzer target of carrier for SECONDS each, starting from a COPY of its seed
# corpus (tests/fuzz/corpus/<target>/ is never modified). Prints, per target, the number of
# executions, the CPU-seconds it used (user + system) and the result; exits non-zero when any target crashed (crash inputs are kept in
# BUILD_DIR/fuzz-artifacts/<target>/).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
targets="fuzz_command fuzz_address fuzz_data fuzz_xtext fuzz_reply fuzz_dns_rdata fuzz_sasl fuzz_server_session
  fuzz_headers fuzz_dns_answer fuzz_sendmail_rcpts fuzz_config fuzz_milter"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

TIMEFORMAT='%U %S'  # bash `time`: user and system CPU-seconds of the fuzzer
failed=0
printf '%-20s %12s %8s %8s  %s\n' target execs seconds cpu-s result
for t in $targets; do
  bin="$build/tests/fuzz/$t"
  if [ ! -x "$bin" ]; then
    printf '%-20s %12s %8s %8s  %s\n' "$t" - - - "MISSING ($bin)"
    failed=1
    continue
  fi
  corpus="$work/$t"
  mkdir -p "$corpus"
  if [ -d "$here/corpus/$t" ]; then cp -R "$here/corpus/$t/." "$corpus/"; fi
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$artifacts"
  log="$work/$t.log"
  { time "$bin" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; } 2>"$work/$t.time"
  rc=$?
  cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$work/$t.time")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o 'DONE *cov.*' "$log" | tail -1)
  [ -n "$execs" ] || execs='?'
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="CRASH (exit $rc), see $artifacts"
    failed=1
    grep -E 'ERROR|FUZZ_CHECK|runtime error|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
  printf '%-20s %12s %8s %8s  %s\n' "$t" "$execs" "$seconds" "$cpu" "$result"
done
exit $failed
