#!/usr/bin/env python3
"""Generate an AOF for benchmarking, written by a real redis-server.

A throw-away server with `appendonly yes` (multi-part appendonlydir, Redis 7+)
and `aof-timestamp-enabled yes` is fed a deterministic write load through
`redis-cli --pipe` until its appendonlydir holds about --size-mb; with
--rewrite-at F a BGREWRITEAOF runs once F of the size is written, so the
directory holds an RDB base plus incr files, as a long-running server's does.
The directory is then copied to OUTPUT (a directory).

Shapes (the parser's cost depends on them; report every one):
  small   many small writes: SET/INCR/HSET/LPUSH/SADD/ZADD/EXPIRE/DEL, short
          keys and values, MULTI blocks: command-bound (~60 bytes/command)
  large   SETs and APPENDs of 2-16 KiB values: byte-bound

Usage: gen_aof.py OUTPUT [--shape small|large] [--size-mb N] [--seed N]
                  [--rewrite-at F] [--redis-server PATH] [--redis-cli PATH]
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MiB = 1024 * 1024


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def small_batch(rng, n):
    cmds = []
    for _ in range(n):
        k = b"k:%d" % rng.randrange(2_000_000)
        r = rng.random()
        if r < 0.30:
            cmds.append(resp(b"SET", k, b"v%d" % rng.randrange(10**9)))
        elif r < 0.45:
            cmds.append(resp(b"INCR", b"ctr:%d" % rng.randrange(100_000)))
        elif r < 0.60:
            cmds.append(resp(b"HSET", b"h:%d" % rng.randrange(200_000), b"f%d" % rng.randrange(20), b"%d" % rng.randrange(10**6)))
        elif r < 0.70:
            cmds.append(resp(b"LPUSH", b"l:%d" % rng.randrange(50_000), b"item%d" % rng.randrange(10**6)))
        elif r < 0.78:
            cmds.append(resp(b"SADD", b"s:%d" % rng.randrange(50_000), b"m%d" % rng.randrange(10**5)))
        elif r < 0.86:
            cmds.append(resp(b"ZADD", b"z:%d" % rng.randrange(50_000), b"%d" % rng.randrange(10**6), b"m%d" % rng.randrange(10**5)))
        elif r < 0.92:
            cmds.append(resp(b"EXPIRE", k, b"%d" % (3600 + rng.randrange(86400))))
        elif r < 0.96:
            cmds.append(resp(b"DEL", k))
        else:
            cmds.append(resp(b"MULTI"))
            cmds.append(resp(b"INCR", b"ctr:%d" % rng.randrange(100_000)))
            cmds.append(resp(b"SET", k, b"t%d" % rng.randrange(10**9)))
            cmds.append(resp(b"EXEC"))
    return b"".join(cmds)


def large_batch(rng, n):
    blob = bytes(rng.randrange(256) for _ in range(16384))
    cmds = []
    for _ in range(n):
        k = b"big:%d" % rng.randrange(20_000)
        size = 2048 + rng.randrange(14336)
        start = rng.randrange(16384 - size + 1)
        verb = b"SET" if rng.random() < 0.8 else b"APPEND"
        cmds.append(resp(verb, k, blob[start:start + size]))
    return b"".join(cmds)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(args, port, *cmd, **kw):
    return subprocess.run([args.redis_cli, "-p", str(port), *cmd], capture_output=True, check=True, **kw).stdout


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def wait_rewrite(args, port):
    while True:
        info = cli(args, port, "INFO", "persistence").decode()
        if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
            return
        time.sleep(0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output")
    p.add_argument("--shape", choices=["small", "large"], default="small")
    p.add_argument("--size-mb", type=int, default=1100)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rewrite-at", type=float, default=0.0)
    p.add_argument("--redis-server", default="/usr/bin/redis-server")
    p.add_argument("--redis-cli", default="/usr/bin/redis-cli")
    args = p.parse_args()
    rng = random.Random(args.seed)
    batch = small_batch if args.shape == "small" else large_batch
    per_batch = 20_000 if args.shape == "small" else 200
    work = tempfile.mkdtemp(prefix="rdbtool-gen-aof-")
    port = free_port()
    server = subprocess.Popen(
        [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
         "--save", "", "--appendonly", "yes", "--appendfsync", "no",
         "--aof-timestamp-enabled", "yes", "--auto-aof-rewrite-percentage", "0",
         "--daemonize", "no", "--logfile", os.path.join(work, "server.log")],
        stdin=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if cli(args, port, "PING").strip() == b"PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        aofdir = os.path.join(work, "appendonlydir")
        target = args.size_mb * MiB
        rewritten = args.rewrite_at <= 0
        while dir_size(aofdir) < target:
            data = b"".join(batch(rng, per_batch) for _ in range(10))
            cli(args, port, "--pipe", input=data)
            if not rewritten and dir_size(aofdir) >= target * args.rewrite_at:
                cli(args, port, "BGREWRITEAOF")
                wait_rewrite(args, port)
                rewritten = True
            print(f"\r{dir_size(aofdir) / MiB:8.0f} MiB", end="", file=sys.stderr)
        print(file=sys.stderr)
        wait_rewrite(args, port)
    finally:
        # SIGTERM: the server flushes and closes its AOF before it exits.
        server.terminate()
        server.wait()
    if os.path.exists(args.output):
        shutil.rmtree(args.output)
    shutil.copytree(aofdir, args.output)
    shutil.rmtree(work, ignore_errors=True)
    for f in sorted(os.listdir(args.output)):
        print(f"{f}\t{os.path.getsize(os.path.join(args.output, f))}")


if __name__ == "__main__":
    main()
