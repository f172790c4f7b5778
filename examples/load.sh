#!/usr/bin/env bash
# Loads the example server with wrk on 127.0.0.1 for a bounded time and
# prints requests per second and latency.
#
# usage: examples/load.sh [SECONDS] [CONNECTIONS]     (defaults: 10 s, 32)
#
# Builds sombra-server in build-release (like scripts/bench.sh), starts it
# on a free port with a fresh database in FULL, makes NODES users and as
# many edges through its API (curl), runs wrk with examples/load.lua (90%
# reads, 10% edge creations, each a durable commit), prints wrk's figures and
# a few of the server's own metrics, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
export NODES=${NODES:-200}
scripts/deps.sh
[ -d build-release ] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
ninja -C build-release examples/sombra-server >/dev/null

tmp=$(mktemp -d)
server=""
cleanup() {
        [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" || true
        rm -rf "$tmp"
}
trap cleanup EXIT

# wrk's connections all come from 127.0.0.1: the per-address limit must let them in.
build-release/examples/sombra-server --db "$tmp/load.sombra" --port 0 --threads 4 \
        --max-per-ip "$((connections + 8))" --max-connections "$((connections + 64))" >"$tmp/out" &
server=$!
for _ in $(seq 50); do
        [ -s "$tmp/out" ] && break
        sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$base" ] || { echo "load: the server did not start" >&2; exit 1; }

# The graph: NODES users and an edge from each to the next, one curl run for
# each kind (a config file of requests, separated by `next`, on one connection).
entry() { # entry PATH JSON: one request of a curl config file (quotes escaped for it)
        printf 'url = "%s%s"\nheader = "Content-Type: application/json"\nfail\n' "$base" "$1"
        printf 'output = "/dev/null"\ndata = "%s"\n' "${2//\"/\\\"}"
}
for i in $(seq 1 "$NODES"); do
        [ "$i" -gt 1 ] && echo next
        entry /nodes "{\"labels\":[\"User\"],\"props\":{\"n\":$i}}"
done >"$tmp/nodes.curl"
for i in $(seq 1 "$NODES"); do
        [ "$i" -gt 1 ] && echo next
        entry /edges "{\"src\":$i,\"dst\":$((i % NODES + 1)),\"type\":\"KNOWS\"}"
done >"$tmp/edges.curl"
curl -s -K "$tmp/nodes.curl"
curl -s -K "$tmp/edges.curl"

echo "load: wrk -t2 -c$connections -d${seconds}s on $base ($NODES nodes; 90% reads, 10% writes in FULL)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s examples/load.lua "$base"
echo
echo "the server's own figures (GET /metrics):"
curl -sf "$base/metrics" | grep -E '^sombra_(commits_total|commits_per_fsync\{quantile="0.5"\}|(read|commit)_latency_seconds\{quantile="0.(5|99)"\}) '
