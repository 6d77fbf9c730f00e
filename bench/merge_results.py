#!/usr/bin/env python3
"""Merges the JSON record lists written by ctfuse_bench and pytorch_baseline.py into one
file (bench/results/h100.json): python3 bench/merge_results.py OUT.json IN1.json [IN2.json ...]"""
import json
import sys

records = []
for path in sys.argv[2:]:
    with open(path) as f:
        records.extend(json.load(f))
with open(sys.argv[1], "w") as f:
    json.dump(records, f, indent=1)
print(f"{len(records)} records -> {sys.argv[1]}")
