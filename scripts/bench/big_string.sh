#!/usr/bin/env bash
# Memory of verify on one huge string: a real redis-server 7.0 saves a single 512 MiB string
# (random bytes, so it is stored plain, not LZF), then `rdbtool verify` reads that dump mapped
# and from standard input; each row prints the peak RSS. The string is never held whole: a
# mapped file's pages are released behind the reader, a stream is read in chunks.
#
# Usage: scripts/bench/big_string.sh [DUMP]
#   DUMP  default /tmp/rdbtool-bench/string-512m.rdb, made when absent
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dump=${1:-/tmp/rdbtool-bench/string-512m.rdb}
rdbtool=$root/target/release/rdbtool

[[ -x /usr/bin/redis-server && -x /usr/bin/redis-cli ]] ||
    { apt-get update >&2; apt-get install -y redis-server redis-tools >&2; }
[[ -x /usr/bin/time ]] || { apt-get update >&2; apt-get install -y time >&2; }
(cd "$root" && cargo build --release)

if [[ ! -s $dump ]]; then
    mkdir -p "$(dirname "$dump")"
    tmp=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    trap 'redis-cli -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
        --dbfilename big.rdb --daemonize yes --logfile "$tmp/server.log" >/dev/null
    until [[ $(redis-cli -p "$port" PING 2>/dev/null) == PONG ]]; do sleep 0.05; done
    # 512 MiB is the largest bulk string the server accepts (proto-max-bulk-len).
    head -c $((512 << 20)) /dev/urandom >"$tmp/value"
    redis-cli -p "$port" -x SET big <"$tmp/value" >/dev/null
    rm "$tmp/value"
    redis-cli -p "$port" SAVE >/dev/null
    echo "strlen: $(redis-cli -p "$port" STRLEN big), dbsize: $(redis-cli -p "$port" DBSIZE)"
    mv "$tmp/big.rdb" "$dump"
fi

echo "dump: $dump ($(($(stat -c %s "$dump") >> 20)) MiB)"
cat "$dump" >/dev/null
/usr/bin/time -f 'mapped: %e s, peak RSS %M KiB' "$rdbtool" verify "$dump"
/usr/bin/time -f 'standard input: %e s, peak RSS %M KiB' "$rdbtool" verify - <"$dump"
