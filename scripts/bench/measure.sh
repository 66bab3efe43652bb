# Sourced by the benchmark scripts: timed rows and their table.
#   measure NAME CMD...         one warm-up, then $runs timed runs (median kept)
#   measure_once NAME CMD...    a single run without warm-up
#   measure_rdbtool NAME SUB …  a row for an rdbtool subcommand ($rdbtool, $build_ok)
#   report INPUT BASELINE       the table, each row relative to ${vs[row]} or BASELINE
# The caller sets runs, tmp, rdbtool and build_ok, and may fill target[row]=MB/s.

rows=()        # "name|median wall s|median cpu s|peak RSS KB|note", from measure/skip
declare -A vs  # row name -> row whose time it is compared with, if not the section's default
declare -A target=()  # row name -> input MB/s (10^6 bytes) the issue asks for
warmup=true

# measure NAME CMD...: one warm-up, then $runs timed runs of CMD.
measure() {
    local name=$1; shift
    echo "measuring $name: $*" >&2
    if $warmup; then "$@" >/dev/null 2>&1 || true; fi
    local times=() cpus=() rss=0 note="" i start end kb code user sys
    $warmup || note="1 run, no warm-up"
    for ((i = 0; i < runs; i++)); do
        # Wall time from bash's microsecond clock: GNU time's %e has only
        # 10 ms resolution, too coarse for the cat row on small dumps.
        # -o keeps the command's own stderr apart; on a non-zero exit GNU time
        # writes an extra line first, so the format line is the last one.
        start=$EPOCHREALTIME
        /usr/bin/time -f '%M %x %U %S' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/stderr" || true
        end=$EPOCHREALTIME
        read -r kb code user sys < <(tail -n 1 "$tmp/time")
        times+=("$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')")
        cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')")
        if ((kb > rss)); then rss=$kb; fi
        if ((code != 0)); then
            note="exit $code: $(head -c 200 "$tmp/stderr" | head -n 1)"
        fi
    done
    rows+=("$name|$(median "${times[@]}")|$(median "${cpus[@]}")|$rss|$note")
}

# measure_once NAME CMD...: a single run without warm-up, for tools taking
# tens of seconds per run; the rows before it have warmed the page cache.
measure_once() {
    local runs=1 warmup=false
    measure "$@"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

skip() {
    echo "skipping $1: $2" >&2
    rows+=("$1||||skipped: $2")
}

# measure_rdbtool NAME SUBCOMMAND ARGS...: a row for an rdbtool subcommand,
# skipped (not failed) while the subcommand does not exist yet.
measure_rdbtool() {
    local name=$1 sub=$2; shift 2
    if ! $build_ok; then
        skip "$name" "cargo build --release failed"
    # Both checks: a binary that ignores its arguments also exits 0 on --help.
    elif ! "$rdbtool" --help 2>/dev/null | grep -qw -- "$sub" ||
        ! "$rdbtool" "$sub" --help >/dev/null 2>&1; then
        skip "$name" "rdbtool has no '$sub' subcommand yet"
    else
        measure "$name" "$rdbtool" "$sub" "$@"
    fi
}

# report INPUT DEFAULT_BASELINE: print the table of the rows measured on INPUT
# (a file, or a directory such as an appendonlydir, whose files are summed),
# each row's time relative to ${vs[row]}, else to DEFAULT_BASELINE.
report() {
    local file=$1 default=$2 bytes row name median cpu rss note base what
    local -A medians=()
    bytes=$(find "$file" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    if [[ -d $file ]]; then what="$(find "$file" -type f | wc -l) files"; else what=$(head -c 9 "$file"); fi
    for row in "${rows[@]}"; do
        IFS='|' read -r name median _ _ _ <<< "$row"
        medians[$name]=$median
    done
    echo
    echo "input: $file ($(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}') MiB, $what)"
    printf '%-30s %10s %8s %10s %14s  %-24s  %s\n' tool "median s" "cpu s" "MiB/s" "peak RSS MiB" "time vs" note
    for row in "${rows[@]}"; do
        IFS='|' read -r name median cpu rss note <<< "$row"
        base=${vs[$name]:-$default}
        awk -v n="$name" -v m="$median" -v c="$cpu" -v r="$rss" -v b="$bytes" \
            -v base="$base" -v bm="${medians[$base]:-}" -v t="${target[$name]:-}" -v note="$note" 'BEGIN {
            if (m == "") { printf "%-30s %10s %8s %10s %14s  %-24s  %s\n", n, "-", "-", "-", "-", "-", note; exit }
            rate = m > 0 ? sprintf("%.0f", b / 1048576 / m) : "inf"
            ratio = (bm > 0) ? sprintf("%.2fx %s", m / bm, base) : "-"
            if (t != "") {
                goal = sprintf("target >= %d MB/s (%.0f MiB/s): %s", t, t * 1e6 / 1048576,
                               (m > 0 && b / 1e6 / m >= t) ? "met" : "MISSED")
                note = note == "" ? goal : note "; " goal
            }
            printf "%-30s %10.3f %8.2f %10s %14.1f  %-24s  %s\n", n, m, c, rate, r / 1024, ratio, note
        }'
    done
}

