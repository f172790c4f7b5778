#!/usr/bin/env python3
"""Smoke test of sombra-bench: runs it with --quick --json and checks that
every line is a JSON object with the promised keys, that every workload
appears for both engines, that the catalogue and knowledge graphs were read
too, and that mixed reports read and write latency apart. The figures
themselves are not judged."""
import json
import subprocess
import sys

WORKLOADS = {
    "insert_nodes_tx1", "insert_nodes_tx1000", "insert_edges_tx1000", "get_node",
    "neighbors_out", "two_hop", "bfs3", "shortest_path", "label_scan",
    "property_lookup", "mixed", "durable_commit_scaling", "durable_commit_async", "long_read",
    "long_write", "recovery",
}
DATASETS = {"social", "catalogue", "knowledge"}
KEYS = {"engine", "dataset", "profile", "workload", "threads", "ops", "seconds", "ops_per_sec",
        "p50_us", "p99_us"}
MIXED_KEYS = {"read_p50_us", "read_p99_us", "write_p50_us", "write_p99_us"}


def main():
    out = subprocess.run([sys.argv[1], "--quick", "--json"], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        print(out.stderr)
        print(f"sombra-bench exited with {out.returncode}")
        return 1
    seen = {}
    datasets = {}
    for number, line in enumerate(out.stdout.splitlines(), 1):
        row = json.loads(line)  # raises on a line that is not JSON
        missing = KEYS - row.keys()
        if missing:
            print(f"line {number} lacks {sorted(missing)}: {line}")
            return 1
        if row["engine"] == "sombra" and row["workload"] in ("mixed", "durable_commit_scaling") \
                and row["profile"] in ("production", "durability") and "commits_per_fsync" not in row:
            print(f"line {number}: sombra FULL row without commits_per_fsync: {line}")
            return 1
        if row["workload"] == "mixed" and not MIXED_KEYS <= row.keys():
            print(f"line {number}: mixed without read and write latency: {line}")
            return 1
        if row["ops"] <= 0:
            print(f"line {number}: no operations ran: {line}")
            return 1
        seen.setdefault(row["engine"], set()).add(row["workload"])
        datasets.setdefault(row["engine"], set()).add(row["dataset"])
    for engine in ("sombra", "sqlite"):
        lacking = WORKLOADS - seen.get(engine, set())
        if lacking:
            print(f"{engine} lacks {sorted(lacking)}")
            return 1
        lacking = DATASETS - datasets.get(engine, set())
        if lacking:
            print(f"{engine} lacks the datasets {sorted(lacking)}")
            return 1
    print(f"{sum(1 for _ in out.stdout.splitlines())} rows, every workload on both engines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
