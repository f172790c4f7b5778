#!/usr/bin/env bash
# `sombra import` against `sqlite3 .import` on the same CSV files: NODES users
# (name, age, joined, score) and EDGES FRIENDS_WITH edges (since), targets
# skewed to low ids, into empty databases. SQLite gets the tables and indexes
# that a graph needs made first, and the shell's defaults (rollback journal).
# Prints, per round, the seconds each took and the files' sizes.
#
# usage: [SOMBRA=path/to/sombra] scripts/import_bench.sh [ROUNDS] [NODES] [EDGES]
#        (defaults 3, 100000, 500000; SOMBRA defaults to this tree's release build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
rounds=${1:-3} nodes=${2:-100000} edges=${3:-500000}
[ -d build-release ] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
ninja -C build-release >/dev/null
sombra=${SOMBRA:-$PWD/build-release/tools/sombra} # SOMBRA: another build to compare
dir=$(mktemp -d /tmp/sombra-import-XXXXXX)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$nodes" "$edges" <<'EOF'
import random, sys
d, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
with open(f"{d}/nodes.csv", "w") as f:
    f.write("id,labels,name:string,age:int,joined:int,score:double\n")
    for i in range(n):
        f.write(f"u{i},User,user-{i},{18 + rng.randrange(63)},{rng.randrange(9000)},"
                f"{rng.randrange(100000) / 100}\n")
with open(f"{d}/edges.csv", "w") as f:
    f.write("src,dst,type,since:int\n")
    for i in range(m):
        dst = int(n * rng.random() ** 3)
        f.write(f"u{rng.randrange(n)},u{dst},FRIENDS_WITH,{2000 + i % 25}\n")
EOF
# SQLite's copies: the same rows, the node key as an integer, no header rows.
sed -e 1d -e 's/^u//' "$dir/nodes.csv" >"$dir/nodes.sqlite.csv"
sed -e 1d -e 's/^u\([0-9]*\),u\([0-9]*\),/\1,\2,/' "$dir/edges.csv" >"$dir/edges.sqlite.csv"

now() { date +%s.%N; }
for r in $(seq "$rounds"); do
        rm -f "$dir/g.sombra" "$dir/g.sombra-wal" "$dir/g.sqlite"
        t0=$(now)
        "$sombra" import "$dir/g.sombra" --nodes "$dir/nodes.csv" --edges "$dir/edges.csv" >/dev/null
        t1=$(now)
        sqlite3 "$dir/g.sqlite" <<EOF
CREATE TABLE nodes(id INTEGER PRIMARY KEY, labels TEXT, name TEXT, age INT, joined INT, score REAL);
CREATE TABLE edges(src INT, dst INT, type TEXT, since INT);
CREATE INDEX nodes_labels ON nodes(labels);
CREATE INDEX edges_out ON edges(src, type);
CREATE INDEX edges_in ON edges(dst, type);
.import --csv $dir/nodes.sqlite.csv nodes
.import --csv $dir/edges.sqlite.csv edges
EOF
        t2=$(now)
        awk -v r="$r" -v a="$t0" -v b="$t1" -v c="$t2" -v x="$(stat -c %s "$dir/g.sombra")" \
                -v y="$(stat -c %s "$dir/g.sqlite")" 'BEGIN {
                printf "round %s: sombra %.2f s, %d MiB; sqlite %.2f s, %d MiB\n",
                       r, b - a, x / 1048576, c - b, y / 1048576 }'
done
