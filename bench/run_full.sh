#!/usr/bin/env bash
# The full measurement behind bench/RESULTS.md, run on the GPU machine from the repository
# root with a build made here (cmake --preset release && cmake --build build):
#   bash bench/run_full.sh OUTDIR [--scaling]
# GPU tests, the bench on the benchmark configuration and its first version, and the
# PyTorch baselines (eager, torch.compile) in the same call, so every ratio comes from
# one session on one GPU; --scaling adds the fused rows over N and H_in = W_in.
# CTFUSE_TEST_BIN / CTFUSE_BENCH_BIN override the binaries' paths.
set -uo pipefail
out=${1:-bench-out}
tests=${CTFUSE_TEST_BIN:-./build/tests/ctfuse_tests}
bench=${CTFUSE_BENCH_BIN:-./build/bench/ctfuse_bench}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
"$tests" --gtest_brief=1 > "$out/tests.log" 2>&1
echo "tests: exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$out/tests.log" | tr '\n' ' '))"
"$bench" --json "$out/bench.json" > "$out/bench.log" 2>&1 || echo "bench: exit $?"
"$bench" --v1 --json "$out/bench_v1.json" > "$out/bench_v1.log" 2>&1 || echo "bench --v1: exit $?"
python3 bench/pytorch_baseline.py --json "$out/pytorch.json" > "$out/pytorch.log" 2>&1 || echo "pytorch: exit $?"
python3 bench/pytorch_baseline.py --v1 --json "$out/pytorch_v1.json" > "$out/pytorch_v1.log" 2>&1 || echo "pytorch --v1: exit $?"
python3 bench/merge_results.py "$out/results.json" "$out/bench.json" "$out/bench_v1.json" "$out/pytorch.json" "$out/pytorch_v1.json"
if [ "${2:-}" = "--scaling" ]; then
  rows=fused_tf32,fused_tf32_mma_sync
  for n in 1 4 64 256; do
    "$bench" --N "$n" --runs 20 --only "$rows" 2>&1 | grep -E "^fused" | sed "s/^/N=$n H=128 /"
  done
  for h in 32 64 256; do
    "$bench" --H "$h" --W "$h" --runs 20 --only "$rows" 2>&1 | grep -E "^fused" | sed "s/^/N=16 H=$h /"
  done
fi | tee "$out/scaling.txt"
