#!/usr/bin/env bash
# Benchmark `rdbtool replay` into a local redis-server 7.0, in one run:
#   1. the floor: the server loading the same RDB at startup;
#   2. replay --mode restore into an empty server (target: <= 1.5x the floor);
#   3. replay --mode commands vs `export --format resp | redis-cli --pipe` on the same data
#      (target: >= 1.0x, by keys loaded per second);
#   4. the same with --on-exists replace, which writes collections under their own names:
#      the default (fail) writes each under a temporary name and renames it (RENAMENX), so
#      that an existing key is never merged into, and this row shows what that costs.
# Each row also gives the server's CPU seconds: the server should be the bottleneck of all.
#
# Usage: scripts/bench/replay.sh [DUMP]
#   DUMP      default /tmp/rdbtool-bench/mixed-1g.rdb (made by gen_dump.py when absent)
#   ROUNDS=N  rounds of the five rows (default 1), every other one in reverse order; with
#             more, each ratio is also given as the median of its per-round ratios, which a
#             busy host moves less
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dump=${1:-/tmp/rdbtool-bench/mixed-1g.rdb}
rdbtool=$root/target/release/rdbtool
server=/usr/bin/redis-server
cli=/usr/bin/redis-cli

[[ -x $server && -x $cli ]] || { apt-get update >&2; apt-get install -y redis-server redis-tools >&2; }
(cd "$root" && cargo build --release)
[[ -s $dump ]] || python3 "$here/gen_dump.py" --output "$dump"

tmp=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
pid=
stop() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; pid=; }
trap 'stop; rm -rf "$tmp"' EXIT

# start [RDB]: a fresh server in $tmp on $port, loading RDB when given; sets $ready to the
# seconds it took to answer PING (loading answers -LOADING).
start() {
    rm -f "$tmp/dump.rdb"
    [[ $# -gt 0 ]] && ln -s "$(realpath "$1")" "$tmp/dump.rdb"
    local t0=$(date +%s.%N)
    "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
        --dbfilename dump.rdb --logfile "$tmp/server.log" --daemonize no >/dev/null 2>&1 &
    pid=$!
    until [[ $("$cli" -p "$port" PING 2>/dev/null) == PONG ]]; do sleep 0.05; done
    ready=$(echo "$(date +%s.%N) - $t0" | bc)
}

# timed CMD...: runs CMD, prints wall seconds.
timed() {
    local t0=$(date +%s.%N)
    "$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/out" "$tmp/err" >&2; return 1; }
    echo "$(date +%s.%N) - $t0" | bc
}

# Seconds of CPU the server has used so far: about its wall time when it is the bottleneck, as
# it should be in every row.
tick=$(getconf CLK_TCK)
cpu() { awk -v t="$tick" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat"; }

keys() { "$cli" -p "$port" INFO keyspace | awk -F'[=,:]' '/^db/ {n += $3} END {print n}'; }

size=$(stat -c %s "$dump")
echo "dump: $dump ($((size >> 20)) MiB)"

ratio() { echo "scale=3; $1 / $2" | bc; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
restore_ratios=()
commands_ratios=()
replace_ratios=()
declare -A wall label=(
    [load]="server loading at startup"
    [restore]="replay --mode restore"
    [commands]="replay --mode commands"
    [replace]="replay --mode commands --on-exists replace"
    [pipe]="export --format resp | redis-cli --pipe"
)
# row NAME: one row of a round, setting wall[NAME]. Each starts a fresh server, so a row does
# not depend on the one before, except through the host (page cache, memory just freed, other
# jobs).
row() {
    # Every row reads the dump: from the page cache, as the host may have dropped it since.
    cat "$dump" >/dev/null
    case $1 in
        load) start "$dump"; wall[load]=$ready ;;
        pipe)
            start
            wall[pipe]=$(timed bash -c "'$rdbtool' export --format resp -q '$dump' | '$cli' -p $port --pipe")
            ;;
        *)
            start
            # shellcheck disable=SC2086 # the label's words are the arguments
            wall[$1]=$(timed "$rdbtool" replay "$dump" --to "redis://127.0.0.1:$port" ${label[$1]#replay } -q)
            ;;
    esac
    local server_cpu got
    server_cpu=$(cpu)
    got=$(keys)
    stop
    echo "${label[$1]}: ${wall[$1]} s (server CPU ${server_cpu} s), ${got} keys"
    case $1 in
        load) ;;
        pipe) tail -1 "$tmp/out" ;;
        *) tail -3 "$tmp/out" ;;
    esac
}

for ((round = 1; round <= ${ROUNDS:-1}; round++)); do
(( ${ROUNDS:-1} > 1 )) && echo "== round $round"
# Every other round runs the rows in reverse, so that neither side of a ratio always runs
# first (the host's state after the previous row would otherwise favour one side).
if (( round % 2 )); then
    rows=(load restore commands pipe replace)
else
    rows=(replace pipe commands restore load)
fi
for r in "${rows[@]}"; do row "$r"; done
restore_ratios+=("$(ratio "${wall[restore]}" "${wall[load]}")")
echo "replay --mode restore: ${restore_ratios[-1]}x the load time (target <= 1.5x)"
commands_ratios+=("$(ratio "${wall[pipe]}" "${wall[commands]}")")
echo "replay --mode commands vs export | redis-cli --pipe: ${commands_ratios[-1]}x keys/s (target >= 1.0x)"
replace_ratios+=("$(ratio "${wall[pipe]}" "${wall[replace]}")")
echo "  the same with --on-exists replace (no staging under a temporary name): ${replace_ratios[-1]}x"
done

if (( ${ROUNDS:-1} > 1 )); then
    echo "== medians of ${ROUNDS} rounds"
    echo "replay --mode restore / load at startup: $(printf '%s\n' "${restore_ratios[@]}" | median)x (rounds: ${restore_ratios[*]}; target <= 1.5x)"
    echo "replay --mode commands vs export | redis-cli --pipe: $(printf '%s\n' "${commands_ratios[@]}" | median)x keys/s (rounds: ${commands_ratios[*]}; target >= 1.0x)"
    echo "  the same with --on-exists replace: $(printf '%s\n' "${replace_ratios[@]}" | median)x (rounds: ${replace_ratios[*]})"
fi
