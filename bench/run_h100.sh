#!/usr/bin/env bash
# The full measurement behind bench/RESULTS.md, run on the GPU machine from the repository
# root with a build made here (cmake --preset release && cmake --build build):
#   bash bench/run_h100.sh OUTDIR
# GPU tests, the bench on the benchmark configuration and its first version, and the
# PyTorch baselines (eager, torch.compile) in the same call, so every ratio comes from
# one session on one GPU.
set -uo pipefail
out=${1:-bench-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
./build/tests/ctfuse_tests --gtest_brief=1 > "$out/tests.log" 2>&1
echo "tests: exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$out/tests.log" | tr '\n' ' '))"
./build/bench/ctfuse_bench --json "$out/bench.json" > "$out/bench.log" 2>&1 || echo "bench: exit $?"
./build/bench/ctfuse_bench --v1 --json "$out/bench_v1.json" > "$out/bench_v1.log" 2>&1 || echo "bench --v1: exit $?"
python3 bench/pytorch_baseline.py --json "$out/pytorch.json" > "$out/pytorch.log" 2>&1 || echo "pytorch: exit $?"
python3 bench/pytorch_baseline.py --v1 --json "$out/pytorch_v1.json" > "$out/pytorch_v1.log" 2>&1 || echo "pytorch --v1: exit $?"
python3 bench/merge_results.py "$out/h100.json" "$out/bench.json" "$out/bench_v1.json" "$out/pytorch.json" "$out/pytorch_v1.json"
