#!/usr/bin/env bash
# Benchmark reading a capture: `backlog inspect` and `backlog verify` of a
# ~1 GiB capture against `rdbtool verify` of a ~1 GiB AOF, in the same run (the
# issue's bar: inspect reads a capture at least at the AOF verify's speed).
#
# The capture is made once (kept in /tmp/rdbtool-bench/capture-small): a real
# master is fed the command-bound AOF's commands with `redis-cli --pipe` while
# `rdbtool backlog capture` records its replication stream — the same small
# writes, now as the stream a replica receives.
#
# Usage: scripts/bench/backlog.sh [CAPTURE_DIR [AOF_DIR]]
#   RUNS=N   timed runs per row after one untimed warm-up (default 3)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=${RUNS:-3}
rdbtool=$root/target/release/rdbtool
capture=${1:-/tmp/rdbtool-bench/capture-small}
aof=${2:-/tmp/rdbtool-bench/aof-small}
[[ -x /usr/bin/time ]] || apt-get install -y time >&2
[[ -x /usr/bin/redis-server ]] || apt-get install -y redis-server >&2
build_ok=true
(cd "$root" && cargo build --release) >&2 || build_ok=false
if [[ ! -s $aof/appendonly.aof.manifest ]]; then
    python3 "$here/gen_aof.py" "$aof" --shape small --rewrite-at 0.3 >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ ! -s $capture/capture.json ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --dir "$tmp" --daemonize yes \
        --logfile "$tmp/log" --repl-diskless-sync no --repl-backlog-size 64mb
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    rm -rf "$capture"
    "$rdbtool" backlog capture "redis://127.0.0.1:$port" --out "$capture" -q >&2 &
    pid=$!
    until [[ -e $capture/snapshot.1.rdb ]]; do sleep 0.1; done
    echo "feeding $aof's commands to the master while capturing..." >&2
    # The AOF's #TS: annotation lines are not commands: redis-cli counts each as an error.
    cat "$aof"/*.incr.aof | redis-cli -p "$port" --pipe >&2 || true
    want=$(redis-cli -p "$port" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
    until [[ $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs"][-1]["end"])' "$capture/capture.json") -ge $want ]]; do
        sleep 0.2
    done
    kill -INT "$pid"
    wait "$pid"
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
fi

source "$here/measure.sh"
# MiB/s of the middle field of the row named $1 over input $2.
rate() {
    local row name median bytes
    bytes=$(find "$2" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    for row in "${rows[@]}"; do
        IFS='|' read -r name median _ <<< "$row"
        [[ $name == "$1" ]] && awk -v b="$bytes" -v m="$median" 'BEGIN {printf "%.0f", b / 1048576 / m}'
    done
}
echo "runs: $runs timed after 1 warm-up, median shown; $(nproc) cores"
echo "rdbtool: $(cd "$root" && git describe --always --dirty 2>/dev/null || echo 'no commit')"
rows=()
measure_rdbtool "rdbtool verify (AOF)" verify "$aof"
report "$aof" "rdbtool verify (AOF)"
aof_rate=$(rate "rdbtool verify (AOF)" "$aof")
rows=()
measure "cat capture (read floor)" sh -c 'cat "$1"/* >/dev/null' sh "$capture"
measure_rdbtool "rdbtool backlog verify" backlog verify "$capture"
measure_rdbtool "rdbtool backlog inspect" backlog inspect "$capture"
report "$capture" "rdbtool backlog verify"
inspect_rate=$(rate "rdbtool backlog inspect" "$capture")
echo
echo "backlog inspect ${inspect_rate} MiB/s vs AOF verify ${aof_rate} MiB/s:" \
    "$(awk -v a="$inspect_rate" -v b="$aof_rate" 'BEGIN {printf "%.2fx", a / b}') (target >= 1.00x)"
