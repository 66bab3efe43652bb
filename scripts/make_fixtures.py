#!/usr/bin/env python3
"""Write real RDB fixtures with every server that scripts/servers.sh installed.

For each server: start it on 127.0.0.1 (temp dir, persistence off), load a
dataset covering every type and encoding that version can write, SAVE, and
copy the dump to OUT/<name>.rdb with OUT/<name>.json describing what the
server itself reported (version, key counts, DEBUG DIGEST). Each fixture is
then checked twice: by that version's redis-check-rdb, and by loading it into
a fresh server and comparing DBSIZE and DEBUG DIGEST.

Some servers also get small variants saved under an LFU or LRU
maxmemory-policy, so the per-key FREQ / IDLE opcodes appear.

Values and TTLs are fixed (seeded RNG, absolute expiry in 2100) so a rerun
writes the same data; the files still differ in aux fields (ctime, used-mem)
and hash-table order, which the servers randomise per process.

Usage: python3 scripts/make_fixtures.py [--servers DIR] [--out DIR] [--only NAME ...]
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_harness import ReplyError, Server, load_servers, version_tuple  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 0x5EED
# Absolute expiry times (2100-01-01) keep keys alive whenever a fixture is
# loaded, and keep the saved bytes independent of when it was generated.
FAR = 4102444800000
MAX_FIXTURE_BYTES = 300 * 1024
# Which servers also get the -lfu / -lru variants: one per RDB family with
# these opcodes is enough.
POLICY_VARIANTS = {"redis-7.0", "valkey-9.1"}
FALLBACK_CHECKER = "redis-7.0"

# Integers at every boundary of the ziplist/listpack/intset integer encodings.
BOUNDARY_INTS = [
    0, 1, 12, 13, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
    8388607, 8388608, -8388608, -8388609, 2147483647, 2147483648, -2147483648,
    -2147483649, 9223372036854775807, -9223372036854775808,
]


class Caps:
    """What the running server can write, probed rather than assumed."""

    def __init__(self, c, info):
        def has(cmd):
            return c("COMMAND", "INFO", cmd)[0] is not None

        def has_config(name):
            return bool(c("CONFIG", "GET", name))

        try:
            debug_help = " ".join(str(line) for line in c("DEBUG", "HELP")).upper()
        except ReplyError:  # 3.0 has no DEBUG HELP, nor anything we probe it for
            debug_help = ""
        v = version_tuple(info["version"])
        self.streams = has("xadd")
        self.quicklist = has_config("list-compress-depth")
        self.functions = has("function")
        self.field_ttl = has("hpexpireat")
        self.vector_sets = has("vadd")
        self.packed_threshold = "QUICKLIST-PACKED-THRESHOLD" in debug_help
        # CREATECONSUMER (6.2) and the 7.0 stream counters (entries added,
        # max deleted id, a group's entries read) are subcommand or option
        # additions, not visible in COMMAND INFO on old servers.
        self.create_consumer = info["kind"] == "valkey" or v >= (6, 2)
        self.stream_counters = info["kind"] == "valkey" or v >= (7, 0)


def server_version(c, kind):
    fields = info_dict(c, "server")
    return fields["valkey_version"] if kind == "valkey" else fields["redis_version"]


def info_dict(c, section):
    out = {}
    for line in c("INFO", section).decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def run(c, commands):
    """Pipelines commands and fails loudly on the first error reply."""
    for cmd, reply in zip(commands, c.pipeline(commands)):
        if isinstance(reply, ReplyError):
            raise RuntimeError(f"{cmd[:4]!r}...: {reply}")


def expire(keys, start=0):
    return [("PEXPIREAT", k, FAR + (start + i) * 1000) for i, k in enumerate(keys)]


def strings(rng):
    cmds = [
        ("SET", "str:short", "hello"),
        ("SET", "str:int16", "12345"),
        ("SET", "str:int8", "-7"),
        ("SET", "str:int32", "-1234567890"),
        # Numeric but not int-encodable in RDB: too long, or not canonical.
        ("SET", "str:int64", "9223372036854775807"),
        ("SET", "str:leading-zero", "007"),
        ("SET", "str:float", "3.14159"),
        ("SET", "str:compressible", "abcdefgh" * 64),
        ("SET", "str:random", bytes(rng.getrandbits(8) for _ in range(20000))),
        ("SET", "str:binary", b"\x00\xff\xfe\x80bin\r\n\x01"),
        ("SET", "str:utf8", "h\u00e9llo w\u00f6rld \u2603"),
        ("SET", "str:empty", ""),
        ("SET", b"key:\xff\xfe\x00\x80", "non-UTF-8 key"),
        ("SET", "", "empty key"),
        # A sparse bitmap: 12.5 KB of mostly zeros, LZF-compressed on disk.
        ("SETBIT", "str:bitmap", 100000, 1),
        ("SETBIT", "str:bitmap", 7, 1),
        # HyperLogLogs are strings; sparse and dense layouts.
        ("PFADD", "hll:sparse", "a", "b", "c"),
        ("PFADD", "hll:dense", *[f"e{i}" for i in range(3000)]),
    ]
    cmds += [("SET", f"str:ttl:{i}", f"v{i}") for i in range(5)]
    cmds += expire([f"str:ttl:{i}" for i in range(5)] + ["str:short", "str:int16", "str:random"])
    return cmds


def lists(rng, caps):
    cmds = [
        ("RPUSH", "list:small", "a", "bb", *BOUNDARY_INTS, "-", "x" * 63, "y" * 64),
        # One entry per listpack/ziplist string length-prefix width.
        ("RPUSH", "list:wide", "s" * 63, "m" * 4000, "l" * 5000, "tail"),
        ("RPUSH", "list:huge-entry", "head", "h" * 17000, "tail"),
        ("RPUSH", "list:big", *[f"item:{i:05d}" if i % 3 else i for i in range(3000)]),
        ("LPUSH", "list:binary", b"\xff\x00", b"\x80\x81\x82"),
    ]
    if caps.quicklist:
        cmds += [
            # Interior quicklist nodes are stored LZF-compressed when
            # list-compress-depth > 0; the setting applies when a list is created.
            ("CONFIG", "SET", "list-compress-depth", "1"),
            ("RPUSH", "list:compressed", *[f"compressed element {i % 50}" for i in range(2000)]),
            ("CONFIG", "SET", "list-compress-depth", "0"),
        ]
    if caps.packed_threshold:
        # PLAIN quicklist nodes hold a single large element. 7.2+ makes them
        # for anything over the 8 KB node limit; 7.0 only above a threshold
        # that DEBUG can lower.
        cmds += [
            ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "8192"),
            ("RPUSH", "list:plain", "before", bytes(rng.getrandbits(8) for _ in range(9000)),
             "after", "p" * 12000, "end"),
            ("DEBUG", "QUICKLIST-PACKED-THRESHOLD", str(1 << 30)),
        ]
    cmds += expire(["list:small", "list:big"], 10)
    return cmds


def sets():
    cmds = [
        ("SADD", "set:int16", *range(-5, 100)),
        ("SADD", "set:int32", 1, -70000, 100000, 2147483647),
        ("SADD", "set:int64", 1, 5000000000, -9223372036854775808, 9223372036854775807),
        ("SADD", "set:small", "apple", "banana", "cherry", "1"),
        ("SADD", "set:binary", b"\xff\xfe", b"\x00", "ok"),
        ("SADD", "set:long-member", "m" * 100, "short"),
        ("SADD", "set:big", *[f"member:{i}" for i in range(300)]),
        ("SADD", "set:big-int", *range(0, 6000, 10)),
    ]
    cmds += expire(["set:small", "set:big"], 20)
    return cmds


def zsets():
    small = [1, "one", 2.5, "two-and-a-half", -3.25, "neg", "inf", "pos-inf", "-inf", "neg-inf",
             0, "zero", 0.1, "tenth", 3e15, "big", 1e-300, "tiny", -1e300, "huge-neg"]
    cmds = [
        ("ZADD", "zset:small", *small),
        ("ZADD", "zset:binary", 1, b"\xff\x00", 2, b"\x80"),
        ("ZADD", "zset:long-member", 1, "m" * 100, 2, "short"),
        ("ZADD", "zset:big", "inf", "top", "-inf", "bottom",
         *[x for i in range(200) for x in (i * 1.5 - 100, f"member:{i}")]),
    ]
    cmds += expire(["zset:small", "zset:big"], 30)
    return cmds


def hashes(caps):
    cmds = [
        ("HMSET", "hash:small", "name", "rdbtool", "count", 42, "neg", -129, "big", 9223372036854775807,
         "empty", "", b"\xff\xfe", b"\x00\x01"),
        ("HMSET", "hash:long-value", "a", "1", "b", "v" * 100),
        # Over hash-max-listpack-entries (512), so a hash table.
        ("HMSET", "hash:big", *[x for i in range(600) for x in (f"field:{i}", f"value:{i}" if i % 2 else i)]),
    ]
    cmds += expire(["hash:small", "hash:big"], 40)
    if caps.field_ttl:
        cmds += [
            ("HMSET", "hash:field-ttl:small", "keep", "1", "ttl1", "2", "ttl2", "3"),
            ("HPEXPIREAT", "hash:field-ttl:small", FAR + 1000, "FIELDS", 1, "ttl1"),
            ("HPEXPIREAT", "hash:field-ttl:small", FAR + 1500, "FIELDS", 1, "ttl2"),
            ("HMSET", "hash:field-ttl:big",
             *[x for i in range(600) for x in (f"field:{i}", f"value:{i}")]),
            ("HPEXPIREAT", "hash:field-ttl:big", FAR + 2000, "FIELDS", 150,
             *[f"field:{i}" for i in range(0, 600, 4)]),
            ("HMSET", "hash:field-ttl:all", "a", "1", "b", "2"),
            ("HPEXPIREAT", "hash:field-ttl:all", FAR + 3000, "FIELDS", 2, "a", "b"),
            # Key TTL and field TTLs on the same key.
            ("PEXPIREAT", "hash:field-ttl:all", FAR + 4000),
        ]
    return cmds


def stream_id(i):
    # Three entries per millisecond so sequence numbers are not all zero.
    return f"{1700000000000 + i // 3}-{i % 3}"


def streams(caps):
    cmds = []
    for i in range(500):
        if i % 11 == 0:
            fields = ("event", "rotate", "n", i)
        elif i % 7 == 0:
            fields = ("sensor", f"s{i % 4}", "temp", 20 + i % 10, "humidity", f"{i % 100}.5")
        else:
            fields = ("sensor", f"s{i % 4}", "temp", 20 + i % 10)
        cmds.append(("XADD", "stream:main", stream_id(i), *fields))
    cmds += [("XDEL", "stream:main", stream_id(i)) for i in range(5, 500, 25)]
    cmds += [
        ("XGROUP", "CREATE", "stream:main", "g1", "0"),
        ("XGROUP", "CREATE", "stream:main", "g2", stream_id(300),
         *(("ENTRIESREAD", 290) if caps.stream_counters else ())),
        # Pending entries: read but not acknowledged, some then acknowledged.
        ("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 10, "STREAMS", "stream:main", ">"),
        ("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 5, "STREAMS", "stream:main", ">"),
        ("XACK", "stream:main", "g1", stream_id(0), stream_id(2), stream_id(4)),
        # Claiming moves an entry to another consumer and bumps its delivery count.
        ("XCLAIM", "stream:main", "g1", "carol", 0, stream_id(1)),
        ("XREADGROUP", "GROUP", "g2", "dave", "COUNT", 3, "STREAMS", "stream:main", ">"),
    ]
    if caps.create_consumer:
        cmds.append(("XGROUP", "CREATECONSUMER", "stream:main", "g2", "idle-consumer"))
    if caps.stream_counters:
        cmds.append(("XSETID", "stream:main", "1700000999999-5",
                     "ENTRIESADDED", 600, "MAXDELETEDID", stream_id(480)))
    else:
        cmds.append(("XSETID", "stream:main", "1700000999999-5"))
    cmds += [
        # A stream whose entries were all deleted still has a last id.
        ("XADD", "stream:emptied", "1-1", "f", "v"),
        ("XDEL", "stream:emptied", "1-1"),
        ("XGROUP", "CREATE", "stream:mkstream", "g0", "$", "MKSTREAM"),
        # Trimming drops whole listpack nodes from the front.
        *[("XADD", "stream:trimmed", f"{i + 1}-0", "k", i) for i in range(250)],
        ("XTRIM", "stream:trimmed", "MAXLEN", 120),
    ]
    cmds += expire(["stream:trimmed"], 50)
    return cmds


def vector_sets():
    cmds = [
        ("VADD", "vset:q8", "VALUES", 3, 0.1, 0.2, 0.3, "a"),
        ("VADD", "vset:q8", "VALUES", 3, 0.3, -0.2, 0.1, "b", "SETATTR", '{"color":"red"}'),
        ("VADD", "vset:noquant", "VALUES", 3, 0.5, 0.25, -1, "x", "NOQUANT"),
        ("VADD", "vset:bin", "VALUES", 3, 1, -1, 1, "y", "BIN"),
    ]
    return cmds


FUNCTION_LIBS = [
    "#!lua name=rdbtool\n"
    "redis.register_function('rdbtool_echo', function(keys, args) return args[1] end)\n",
    "#!lua name=rdbtool_ro\n"
    "redis.register_function{function_name='rdbtool_get', flags={'no-writes'},\n"
    "  callback=function(keys, args) return redis.call('GET', keys[1]) end}\n",
]


def populate(c, caps, rng):
    db0 = strings(rng) + lists(rng, caps) + sets() + zsets() + hashes(caps)
    if caps.streams:
        db0 += streams(caps)
    if caps.vector_sets:
        db0 += vector_sets()
    run(c, [("SELECT", 0)] + db0)
    run(c, [
        ("SELECT", 1),
        ("SET", "db1:str", "in db 1"),
        ("SET", "db1:int", 99),
        ("HMSET", "db1:hash", "f", "v", "n", 1),
        ("SADD", "db1:set", 1, 2, 3),
        ("PEXPIREAT", "db1:str", FAR),
    ])
    run(c, [
        ("SELECT", 5),
        ("SET", "db5:str", "in db 5"),
        ("RPUSH", "db5:list", 1, 2, 3, "four"),
        ("ZADD", "db5:zset", 1, "a"),
        ("PEXPIREAT", "db5:list", FAR),
        ("SELECT", 0),
    ])
    if caps.functions:
        run(c, [("FUNCTION", "LOAD", lib) for lib in FUNCTION_LIBS])


def populate_policy(c, policy):
    """A few keys of each type, with access patterns that vary FREQ / IDLE."""
    cmds = [
        ("SET", "hot", "x"), ("SET", "cold", "y"), ("SET", "num", 7),
        ("RPUSH", "list", "a", "b"), ("SADD", "set", 1, 2), ("ZADD", "zset", 1, "a"),
        ("HSET", "hash", "f", "v"), ("XADD", "stream", "1-1", "f", "v"),
        ("PEXPIREAT", "num", FAR),
    ]
    run(c, cmds)
    if policy == "allkeys-lru":
        # The LRU clock ticks in seconds; let the first keys go idle, then
        # touch a few so the IDLE values differ.
        time.sleep(2.2)
        run(c, [("GET", "hot"), ("LRANGE", "list", 0, -1), ("SET", "fresh", "new")])
    else:
        run(c, [("GET", "hot")] * 200 + [("HGET", "hash", "f")] * 20 + [("SET", "fresh", "new")])


def snapshot(c, kind):
    """Counts and digest as the server reports them, for the .json sidecar."""
    keyspace = info_dict(c, "keyspace")
    dbsize, expires = {}, 0
    for db, stats in sorted(keyspace.items(), key=lambda kv: int(kv[0][2:])):
        fields = dict(part.split("=") for part in stats.split(","))
        dbsize[db[2:]] = int(fields["keys"])
        expires += int(fields["expires"])
        c("SELECT", int(db[2:]))
        if c("DBSIZE") != dbsize[db[2:]]:
            raise RuntimeError(f"DBSIZE and INFO keyspace disagree for {db}")
    types = {}
    for db in dbsize:
        c("SELECT", int(db))
        cursor = b"0"
        while True:
            cursor, keys = c("SCAN", cursor, "COUNT", 1000)
            for t in c.pipeline([("TYPE", k) for k in keys]):
                types[t] = types.get(t, 0) + 1
            if cursor == b"0":
                break
    c("SELECT", 0)
    return {
        "version": server_version(c, kind),
        "dbsize": dbsize,
        "keys": sum(dbsize.values()),
        "expires": expires,
        "types": dict(sorted(types.items())),
        "digest": c("DEBUG", "DIGEST"),
    }


def check_rdb(check, path):
    if not check:
        return "no checker"
    r = subprocess.run([check, path], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or "RDB looks OK" not in r.stdout:
        raise RuntimeError(f"{os.path.basename(check)} rejected {path}:\n{r.stdout}{r.stderr}")
    return "check-rdb OK"


def check_reload(info, path, expected, extra_args):
    """Loads the fixture into a fresh server: same keys, same digest."""
    with Server(info, extra_args, rdb=path) as s:
        c = s.client()
        got = snapshot(c, info["kind"])
        c.close()
    for field in ("dbsize", "expires", "digest"):
        if got[field] != expected[field]:
            raise RuntimeError(f"reloading {path}: {field} {got[field]!r} != {expected[field]!r}")


def make_fixture(info, checker, out_dir, fixture, policy=None):
    extra = ["--maxmemory-policy", policy] if policy else []
    rdb_path = os.path.join(out_dir, fixture + ".rdb")
    with Server(info, extra) as s:
        c = s.client()
        if policy:
            populate_policy(c, policy)
        else:
            caps = Caps(c, info)
            populate(c, caps, random.Random(SEED))
        meta = snapshot(c, info["kind"])
        c("SAVE")
        c.close()
        shutil.copyfile(s.dump_path, rdb_path)
    with open(rdb_path, "rb") as f:
        magic = f.read(9).decode("ascii")
    size = os.path.getsize(rdb_path)
    record = {"server": info["name"], "fixture": fixture, "version": meta.pop("version"), "magic": magic}
    if policy:
        record["maxmemory_policy"] = policy
    record.update(meta)
    try:
        checked = check_rdb(checker, rdb_path)
        check_reload(info, rdb_path, record, extra)
    except Exception:
        os.unlink(rdb_path)  # leave no fixture that its own server rejects
        raise
    with open(os.path.join(out_dir, fixture + ".json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    note = "" if size <= MAX_FIXTURE_BYTES else f"  WARNING: over {MAX_FIXTURE_BYTES} bytes"
    print(f"{fixture:<18} {magic}  {size:>7} B  keys={record['keys']:<3} expires={record['expires']:<3}"
          f" {checked}, reload OK{note}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=os.path.join(ROOT, "target", "servers"),
                    help="directory written by scripts/servers.sh")
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata"))
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="server name from servers.json; repeatable")
    args = ap.parse_args()

    all_servers = load_servers(args.servers)
    servers = all_servers
    if args.only:
        unknown = set(args.only) - {s["name"] for s in all_servers}
        if unknown:
            sys.exit(f"not in {args.servers}/servers.json: {', '.join(sorted(unknown))}")
        servers = [s for s in all_servers if s["name"] in args.only]
    os.makedirs(args.out, exist_ok=True)

    # Servers without a redis-check-rdb mode (3.0) are checked by Debian's,
    # which reads every RDB version up to 10.
    fallback = next((s["check_rdb"] for s in all_servers if s["name"] == FALLBACK_CHECKER), None)
    failures = []
    for info in servers:
        checker = info["check_rdb"] or fallback
        jobs = [(info["name"], None)]
        if info["name"] in POLICY_VARIANTS:
            jobs += [(info["name"] + "-lfu", "allkeys-lfu"), (info["name"] + "-lru", "allkeys-lru")]
        for fixture, policy in jobs:
            try:
                make_fixture(info, checker, args.out, fixture, policy)
            except Exception as e:  # report every server, then fail overall
                failures.append(fixture)
                print(f"{fixture}: FAILED: {e}", file=sys.stderr)
    if failures:
        sys.exit(f"failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
