#!/usr/bin/env bash
# Benchmark `rdbtool backlog capture` against a real master under
# `redis-benchmark -P 16` write load: does the capture keep up?
#
# For each load it prints the master's stream rate, the capture's largest lag
# (master_repl_offset minus the last offset the capture kept, sampled by the
# capture itself every second), how long after the load ended the capture held
# the whole stream, the capture's CPU time and peak RSS, and `backlog verify`'s
# verdict and time on the result.
#
# Usage: scripts/bench/capture.sh
#   REQUESTS=N  requests per redis-benchmark test (default 1000000)
#   KEEP=DIR    keep the last capture in DIR (for `backlog inspect` benchmarks)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
requests=${REQUESTS:-1000000}
rdbtool=$root/target/release/rdbtool
[[ -x /usr/bin/time ]] || apt-get install -y time >&2
[[ -x /usr/bin/redis-benchmark ]] || apt-get install -y redis-tools >&2
[[ -x /usr/bin/redis-server ]] || apt-get install -y redis-server >&2
(cd "$root" && cargo build --release) >&2

tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

offset() { redis-cli -p "$port" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p'; }
kept() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs"][-1]["end"])' "$1/capture.json"; }

# One load: a fresh master, a capture from before the load to after it.
run() {
    local name=$1
    shift
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$tmp/cap" "$tmp/data" && mkdir -p "$tmp/data"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --dir "$tmp/data" --daemonize yes \
        --logfile "$tmp/data/log" --repl-diskless-sync no --repl-backlog-size 64mb
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    /usr/bin/time -f '%U %S %M' -o "$tmp/time" \
        "$rdbtool" backlog capture "redis://127.0.0.1:$port" --out "$tmp/cap" -q >"$tmp/summary" &
    local pid=$!
    until [[ -e $tmp/cap/snapshot.1.rdb ]]; do sleep 0.1; done
    local off0 t0 t1 off1 t2
    off0=$(offset)
    t0=$(date +%s.%N)
    redis-benchmark -p "$port" -P 16 -n "$requests" -r 1000000 -q "$@" >/dev/null
    t1=$(date +%s.%N)
    off1=$(offset)
    until [[ $(kept "$tmp/cap") -ge $off1 ]]; do sleep 0.05; done
    t2=$(date +%s.%N)
    # /usr/bin/time ignores SIGINT while it waits: Ctrl-C goes to the capture itself.
    pkill -INT -P "$pid"
    wait "$pid"
    local lag cpu rss
    lag=$(sed -n 's/.*largest lag //p' "$tmp/summary")
    read -r user sys rss <"$tmp/time"
    cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")
    local vt0 vt1 verdict
    vt0=$(date +%s.%N)
    verdict=$("$rdbtool" backlog verify "$tmp/cap" | tail -1 | cut -d' ' -f1)
    vt1=$(date +%s.%N)
    python3 - "$name" "$off0" "$off1" "$t0" "$t1" "$t2" "$lag" "$cpu" "$rss" "$verdict" "$vt0" "$vt1" <<'EOF'
import sys
name, off0, off1, t0, t1, t2, lag, cpu, rss, verdict, vt0, vt1 = sys.argv[1:]
mb = (int(off1) - int(off0)) / 2**20
load = float(t1) - float(t0)
print(f"| {name} | {mb:.0f} MiB in {load:.1f} s ({mb / load:.0f} MiB/s) | {lag} "
      f"| {float(t2) - float(t1):.2f} s | {cpu} s | {int(rss) // 1024} MiB "
      f"| {verdict} in {float(vt1) - float(vt0):.2f} s |")
EOF
    if [[ -n ${KEEP:-} ]]; then
        rm -rf "$KEEP" && cp -r "$tmp/cap" "$KEEP"
    fi
}

echo "| load (redis-benchmark -P 16, $requests requests per test) | stream | largest lag | caught up after the load | capture CPU | capture RSS | backlog verify |"
echo "|---|---|---|---|---|---|---|"
run "set,lpush,hset,zadd 3 B values" -t set,lpush,hset,zadd
run "set 1 KiB values" -t set -d 1024
