#!/usr/bin/env bash
# Benchmark `rdbtool diff` on two ~1 GiB dumps that differ in ~1% of their keys, against
# two `rdbtool verify` runs over the same files (the time it takes just to read and check
# them both) and against the text way: export both to JSON Lines, sort, diff.
#
# Usage: scripts/bench/diff.sh [A [B]]
#   A          default /tmp/rdbtool-bench/mixed-1g.rdb (made by gen_dump.py when absent)
#   B          default /tmp/rdbtool-bench/mixed-1g-b.rdb (made from A by
#              make_diff_pair.py when absent: ~1% of keys changed by a real Redis 7.0)
#   RUNS=N     rounds of timed runs after one warm-up (default 5)
#   TEXT=0     skip the export | sort | diff row (slow)
#
# Rows run from a warm page cache. The time of "2 x verify" is the sum of one verify of A
# and one of B; peak RSS is the larger of the two.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
a=${1:-/tmp/rdbtool-bench/mixed-1g.rdb}
b=${2:-/tmp/rdbtool-bench/mixed-1g-b.rdb}
runs=${RUNS:-5}
rdbtool=$root/target/release/rdbtool

(cd "$root" && cargo build --release)
if [[ ! -s $a ]]; then
    python3 "$here/gen_dump.py" --output "$a"
fi
if [[ ! -s $b ]]; then
    python3 "$here/make_diff_pair.py" --input "$a" --output "$b"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run CMD...: one timed run; prints "wall_s cpu_s peak_kb".
run() {
    local start end kb user sys
    start=$EPOCHREALTIME
    /usr/bin/time -f '%M %U %S' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/stderr" || true
    end=$EPOCHREALTIME
    read -r kb user sys < <(tail -n 1 "$tmp/time")
    awk -v s="$start" -v e="$end" -v u="$user" -v y="$sys" -v k="$kb" \
        'BEGIN {printf "%.3f %.2f %d\n", e - s, u + y, k}'
}

# Rows are timed in rounds, each round running every row once, so that load from other
# processes falls on all rows alike; the median of each row's runs is kept.
declare -A wall cpu rss cmds results
names=()
row_cmd() {
    local name=$1; shift
    names+=("$name")
    cmds[$name]=$(printf '%q ' "$@")
}
measure_rounds() {
    local name i
    for name in "${names[@]}"; do
        echo "warm-up $name" >&2
        eval "${cmds[$name]}" >/dev/null 2>&1 || true
    done
    for ((i = 0; i < runs; i++)); do
        for name in "${names[@]}"; do
            echo "round $((i + 1)): $name" >&2
            results[$name]+="$(eval "run ${cmds[$name]}")"$'\n'
        done
    done
    for name in "${names[@]}"; do
        local median
        median=$(printf '%s' "${results[$name]}" | sort -g | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}')
        read -r "wall[$name]" "cpu[$name]" "rss[$name]" <<< "$median"
    done
}

# The text way, as one command: both dumps exported to JSON Lines (one key per line, like
# rdbtools' output), sorted, compared.
text_diff=(bash -c 'export LC_ALL=C
    "$0" export "$1" --format jsonl -q | sort > "$3/a.jsonl"
    "$0" export "$2" --format jsonl -q | sort > "$3/b.jsonl"
    diff "$3/a.jsonl" "$3/b.jsonl" > "$3/text.diff" || true' "$rdbtool" "$a" "$b" "$tmp")

row_cmd "verify A" "$rdbtool" verify "$a"
row_cmd "verify B" "$rdbtool" verify "$b"
row_cmd "diff (table)" "$rdbtool" diff "$a" "$b"
row_cmd "diff --format jsonl" "$rdbtool" diff "$a" "$b" --format jsonl -o /dev/null
row_cmd "diff --format resp" "$rdbtool" diff "$a" "$b" --format resp -o /dev/null
measure_rounds
if [[ ${TEXT:-1} != 0 ]]; then
    # One run: it takes a minute.
    echo "measuring export | sort | diff" >&2
    read -r "wall[export | sort | diff]" "cpu[export | sort | diff]" "rss[export | sort | diff]" \
        <<< "$(run "${text_diff[@]}")"
fi

"$rdbtool" diff "$a" "$b" > "$tmp/summary" || true
keys=$("$rdbtool" verify --format json "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["keys"])')
base_wall=$(awk -v x="${wall[verify A]}" -v y="${wall[verify B]}" 'BEGIN {print x + y}')
base_cpu=$(awk -v x="${cpu[verify A]}" -v y="${cpu[verify B]}" 'BEGIN {print x + y}')
base_rss=$(( ${rss[verify A]} > ${rss[verify B]} ? ${rss[verify A]} : ${rss[verify B]} ))

echo
echo "A: $a ($(stat -c %s "$a") bytes, $keys keys)"
echo "B: $b ($(stat -c %s "$b") bytes)"
tail -n 1 "$tmp/summary"
echo "runs: $runs rounds (every row once per round) after 1 warm-up, median shown; text row: 1 run; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rdbtool: $(cd "$root" && git describe --always --dirty 2>/dev/null || echo 'no commit')"
printf '%-24s %9s %8s %13s %16s %14s\n' row "wall s" "cpu s" "peak RSS MiB" "wall vs 2 verify" "RSS B/key of A"
row() {
    local name=$1 w=$2 c=$3 k=$4
    awk -v n="$name" -v w="$w" -v c="$c" -v k="$k" -v bw="$base_wall" -v keys="$keys" 'BEGIN {
        printf "%-24s %9.3f %8.2f %13.1f %15.2fx %14.1f\n", n, w, c, k / 1024, w / bw, k * 1024 / keys
    }'
}
row "2 x verify (A, B)" "$base_wall" "$base_cpu" "$base_rss"
for name in "diff (table)" "diff --format jsonl" "diff --format resp" "export | sort | diff"; do
    [[ -n ${wall[$name]:-} ]] && row "$name" "${wall[$name]}" "${cpu[$name]}" "${rss[$name]}"
done
