#!/usr/bin/env python3
"""Make the second dump of a diff benchmark: DUMP A with about 1% of its keys changed.

A throw-away redis-server loads A, a deterministic selection of keys (by CRC-32 of the
name, so the same keys whatever the server's order) is changed, a few keys are added, and
the server SAVEs the result as B. What was done is printed per kind of change, to set
against what `rdbtool diff A B` reports.

Changes, by a second digit of the CRC: deleted; type changed (DEL + SET); TTL changed
(PEXPIREAT); value changed (APPEND, HSET of a new and of an existing field, RPUSH, SADD /
SPOP, ZADD / ZINCRBY, XADD). Then new keys (0.2% of A's) are added.

Usage: make_diff_pair.py --input A.rdb --output B.rdb [--percent 1.0]
                         [--redis-server PATH] [--redis-cli PATH]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_dump  # noqa: E402  (RespConn, Server, Pipe, info)

# 2100-01-01 plus a bit: different from every TTL the generator wrote.
NEW_TTL_MS = 4_102_444_800_000 + 123_456


class LoadedServer(gen_dump.Server):
    """A server started on an existing dump: loading 1 GiB takes longer than a start."""

    def _wait_ready(self):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = gen_dump.RespConn(self.port)
                ok = conn.call("PING") == "PONG"
                conn.close()
                if ok:
                    return True
            except (OSError, RuntimeError):
                pass
            time.sleep(0.2)
        return False


def pipelined(conn, commands):
    """Sends commands in one write, returns their replies (errors as exceptions)."""
    conn.sock.sendall(b"".join(gen_dump.resp([a if isinstance(a, bytes) else str(a).encode()
                                              for a in c]) for c in commands))
    return [conn._read() for _ in commands]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--percent", type=float, default=1.0)
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--redis-cli", default="/usr/bin/redis-cli")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="rdbtool-diff-pair-")
    shutil.copy(args.input, os.path.join(work, "dump.rdb"))
    server = LoadedServer(args.redis_server, work)
    done = {}
    try:
        conn = gen_dump.RespConn(server.port)
        dbs = sorted(int(k[2:]) for k in gen_dump.info(conn, "keyspace"))
        per_mille = int(args.percent * 10)
        keys_a = 0
        for db in dbs:
            conn.call("SELECT", db)
            selected = []
            cursor = b"0"
            while True:
                cursor, names = conn.call("SCAN", cursor, "COUNT", 10000)
                keys_a += len(names)
                selected += [k for k in names if zlib.crc32(k) % 1000 < per_mille]
                if cursor == b"0":
                    break
            # SCAN may return a key twice.
            selected = sorted(set(selected))
            types = pipelined(conn, [("TYPE", k) for k in selected])
            pipe = gen_dump.Pipe(args.redis_cli, server.port, work)
            pipe.send([b"SELECT", str(db).encode()])
            for key, ty in zip(selected, types):
                what = change(pipe, conn, key, ty, zlib.crc32(key) // 1000 % 10)
                done[what] = done.get(what, 0) + 1
            pipe.finish()
        # New keys: strings and small hashes in db 0.
        conn.call("SELECT", 0)
        pipe = gen_dump.Pipe(args.redis_cli, server.port, work)
        added = keys_a // 500
        for i in range(added):
            if i % 2:
                pipe.send([b"SET", b"diff:new:%d" % i, b"value-%d" % i])
            else:
                pipe.send([b"HSET", b"diff:newhash:%d" % i, b"a", b"1", b"b", b"%d" % i])
        pipe.finish()
        done["added"] = added
        conn.call("SAVE")
        conn.close()
    finally:
        server.kill()
    shutil.move(os.path.join(work, "dump.rdb"), args.output)
    shutil.rmtree(work, ignore_errors=True)
    print(f"A: {args.input}: {keys_a} keys; B: {args.output}")
    for what in sorted(done):
        print(f"  {what}: {done[what]}")
    print(f"  total: {sum(done.values())}")


def change(pipe, conn, key, ty, digit):
    """Applies one change to `key` of type `ty`; returns its name."""
    if digit < 2:
        pipe.send([b"DEL", key])
        return "removed"
    if digit == 2:
        pipe.send([b"DEL", key])
        pipe.send([b"SET", key, b"type-changed"])
        return "type-changed"
    if digit == 3:
        pipe.send([b"PEXPIREAT", key, str(NEW_TTL_MS).encode()])
        return "ttl-changed"
    odd = digit % 2 == 1
    if ty == "string":
        pipe.send([b"APPEND", key, b"!"])
    elif ty == "hash":
        if odd:
            pipe.send([b"HSET", key, b"diff-field", b"new"])
        else:
            field = conn.call("HRANDFIELD", key)
            pipe.send([b"HSET", key, field, b"changed"])
    elif ty == "list":
        pipe.send([b"RPUSH", key, b"diff-element"])
    elif ty == "set":
        if odd:
            pipe.send([b"SADD", key, b"diff-member"])
        else:
            pipe.send([b"SPOP", key])
    elif ty == "zset":
        if odd:
            pipe.send([b"ZADD", key, b"12345", b"diff-member"])
        else:
            member = conn.call("ZRANDMEMBER", key)
            pipe.send([b"ZINCRBY", key, b"1", member])
    elif ty == "stream":
        pipe.send([b"XADD", key, b"*", b"diff", b"1"])
    else:
        raise RuntimeError(f"unexpected type {ty} of {key!r}")
    return "value-changed"


if __name__ == "__main__":
    main()
