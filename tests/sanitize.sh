#!/usr/bin/env bash
# The GPU tests under compute-sanitizer's four tools. On the GPU machine, from the
# repository root, with a build made by `cmake --preset release && cmake --build build`:
#   bash tests/sanitize.sh [GTEST_FILTER] [TOOLS]
# Defaults: every test except the N=4096 one (17 GB of x: hours under instrumentation),
# and all of memcheck, racecheck, synccheck, initcheck. Prints one line per tool and
# exits non-zero if any tool reports an error or a test fails. Logs: $SANITIZE_LOG_DIR
# (default sanitize-logs/).
set -uo pipefail
bin=${CTFUSE_TEST_BIN:-./build/tests/ctfuse_tests}
filter=${1:-'-ForwardFused.BatchWhoseYWouldNotFit'}
tools=${2:-"memcheck racecheck synccheck initcheck"}
logs=${SANITIZE_LOG_DIR:-sanitize-logs}
mkdir -p "$logs"
status=0
for tool in $tools; do
  log="$logs/$tool.log"
  compute-sanitizer --tool "$tool" --error-exitcode 99 "$bin" --gtest_filter="$filter" --gtest_brief=1 > "$log" 2>&1
  rc=$?
  summary=$(grep -E "(ERROR|RACECHECK) SUMMARY" "$log" | tail -1)
  tests=$(grep -E "^\[  (PASSED|FAILED)  \]" "$log" | tr '\n' ' ')
  echo "$tool: exit $rc; $summary; $tests"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
