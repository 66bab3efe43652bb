#!/usr/bin/env python3
"""Generate a realistic mixed-type RDB dump for benchmarking rdbtool.

A throw-away redis-server is filled through `redis-cli --pipe` with a
deterministic (fixed seed) mix of strings, hashes, lists, sets, sorted sets and
streams in db 0 and 1, ~30% of keys carrying far-future TTLs, and SAVEd once
the dump reaches roughly --size-mb.

The same script drives other server builds (--redis-server/--redis-cli), e.g. a
Redis 6.2 binary for an RDB 9 dump. Which encodings land in the file depends on
the server: Redis 7.0 writes small string sets as hashtable sets, 7.2+ as
listpack sets.

Key contents are a function of the seed (and the Python version's `random`);
the dump is not byte-identical between runs because the server records wall
clock times (aux fields, stream PEL delivery times).

Usage: gen_dump.py [--output PATH] [--size-mb N] [--seed N]
                   [--redis-server PATH] [--redis-cli PATH]
"""

import argparse
import base64
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MiB = 1024 * 1024

# Share of generated payload bytes (key + element bytes) per kind, normalised
# by TOTAL_SHARE. Sub-kinds are listed under their Redis type so the summary
# can be grouped by type.
MIX = {
    "string": {"profile": 0.20, "session": 0.10, "cache": 0.08,
               "counter": 0.02, "blob": 0.02},
    "hash": {"hash-small": 0.10, "hash-large": 0.05},
    "list": {"list-small": 0.07, "list-large": 0.08},
    "set": {"intset": 0.03, "set-small": 0.03, "set-large": 0.04},
    "zset": {"zset-small": 0.05, "zset-large": 0.05},
    "stream": {"stream": 0.05},
}
TOTAL_SHARE = sum(s for sub in MIX.values() for s in sub.values())

TTL_FRACTION = 0.30
DB1_FRACTION = 0.30
# 2100-01-01T00:00:00Z: TTLs must stay in the future whenever the dump is read.
TTL_BASE_MS = 4_102_444_800_000
# Big collections are sent in slices so no single command gets huge.
CHUNK = 1000

HASH_FIELDS = [b"name", b"email", b"age", b"country", b"created_at",
               b"last_login", b"plan", b"theme", b"lang", b"tz", b"score",
               b"visits", b"referrer", b"avatar", b"status", b"role",
               b"phone", b"city", b"zip", b"newsletter", b"device", b"tier"]
COUNTRIES = [b"de", b"fr", b"us", b"gb", b"jp", b"br", b"in", b"es", b"it", b"nl"]
LEVELS = [b"INFO", b"INFO", b"INFO", b"WARN", b"DEBUG", b"ERROR"]
EVENTS = [b"click", b"view", b"purchase", b"signup", b"login", b"logout"]


def make_words(n):
    """Pseudo-English vocabulary: repetitive enough for LZF to compress."""
    rng = random.Random(12345)
    syllables = ["ka", "lo", "re", "mi", "tan", "so", "vel", "par", "di", "on",
                 "est", "ur", "ne", "ba", "qui", "st", "ra", "el", "mo", "ti"]
    return sorted({"".join(rng.choices(syllables, k=rng.randint(1, 4))).encode()
                   for _ in range(n)})


WORDS = make_words(3000)


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(out)


class RespConn:
    """Just enough of a RESP client for control commands (no dependencies)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = self.sock.makefile("rb")

    def call(self, *args):
        self.sock.sendall(resp([a if isinstance(a, bytes) else str(a).encode()
                                for a in args]))
        return self._read()

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise RuntimeError(body.decode())
        if kind == b":":
            return int(body)
        if kind == b"$":
            n = int(body)
            return None if n < 0 else self.reader.read(n + 2)[:-2]
        if kind == b"*":
            n = int(body)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def info(conn, section):
    fields = {}
    for line in conn.call("INFO", section).decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k] = v
    return fields


class Server:
    def __init__(self, binary, workdir):
        self.workdir = workdir
        self.log = os.path.join(workdir, "redis.log")
        # Bind-to-0 then release can race with another process; retry once.
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", workdir, "--dbfilename", "dump.rdb",
                 "--save", "", "--appendonly", "no", "--logfile", self.log],
                stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return
            self.kill()
        raise RuntimeError(f"redis-server did not start; log:\n{self.log_tail()}")

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = RespConn(self.port)
                # PING fails with -LOADING or similar until the server is up.
                ok = conn.call("PING") == "PONG"
                conn.close()
                if ok:
                    return True
            except (OSError, RuntimeError):
                pass
            time.sleep(0.05)
        return False

    def log_tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return "(no log)"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Pipe:
    """One `redis-cli --pipe` session; replies are only counted by redis-cli."""

    def __init__(self, cli, port, workdir):
        self.out_path = os.path.join(workdir, "pipe.out")
        # stdout goes to a file: error replies could otherwise fill the pipe
        # and deadlock us while we are still writing the command stream.
        self.out = open(self.out_path, "w+b")
        self.proc = subprocess.Popen(
            [cli, "-h", "127.0.0.1", "-p", str(port), "--pipe"],
            stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT)
        self.buf = []
        self.buffered = 0
        self.sent = 0

    def send(self, args):
        data = resp(args)
        self.buf.append(data)
        self.buffered += len(data)
        if self.buffered >= MiB:
            self._flush()

    def _flush(self):
        self.proc.stdin.write(b"".join(self.buf))
        self.sent += self.buffered
        self.buf, self.buffered = [], 0

    def finish(self):
        self._flush()
        self.proc.stdin.close()
        rc = self.proc.wait()
        self.out.seek(0)
        output = self.out.read().decode(errors="replace")
        self.out.close()
        # Exits 1 when any reply was an error, e.g. a command this server
        # version lacks.
        if rc != 0:
            raise RuntimeError(f"redis-cli --pipe failed (rc={rc}):\n{output[-2000:]}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Generator:
    """Emits keys kind by kind; state carries across batches so the long-run
    byte mix matches MIX even when single keys are bigger than a batch share."""

    def __init__(self, seed):
        self.seed = seed
        self.rng = random.Random(seed)
        self.carry = {kind: 0.0 for sub in MIX.values() for kind in sub}
        self.ids = dict.fromkeys(self.carry, 0)
        self.stats = {kind: [0, 0] for kind in self.carry}  # keys, bytes
        self.expires = 0
        self.per_db = [0, 0]
        self.pipe = None
        self.db = 0

    def payload_bytes(self):
        return sum(nbytes for _, nbytes in self.stats.values())

    def batch(self, pipe, payload_bytes):
        self.pipe = pipe
        self.db = 0  # each redis-cli connection starts in db 0
        for sub in MIX.values():
            for kind, share in sub.items():
                self.carry[kind] += payload_bytes * share / TOTAL_SHARE
                gen = getattr(self, "gen_" + kind.replace("-", "_"))
                while self.carry[kind] > 0:
                    self.ids[kind] += 1
                    used = gen(self.ids[kind])
                    self.carry[kind] -= used
                    self.stats[kind][0] += 1
                    self.stats[kind][1] += used

    # -- helpers ------------------------------------------------------------

    def begin_key(self):
        db = 1 if self.rng.random() < DB1_FRACTION else 0
        if db != self.db:
            self.pipe.send([b"SELECT", b"%d" % db])
            self.db = db
        self.per_db[db] += 1

    def end_key(self, key):
        if self.rng.random() < TTL_FRACTION:
            ts = TTL_BASE_MS + self.rng.randrange(365 * 86_400_000)
            self.pipe.send([b"PEXPIREAT", key, b"%d" % ts])
            self.expires += 1

    def send_chunked(self, cmd, key, items, width):
        """Send `cmd key items...` in slices of CHUNK elements (width args each)."""
        step = CHUNK * width
        for i in range(0, len(items), step):
            self.pipe.send([cmd, key] + items[i:i + step])

    def text(self, n):
        """About n bytes of word salad (compressible)."""
        k = max(1, n // 6)
        return b" ".join(self.rng.choices(WORDS, k=k))[:n]

    def token(self, n):
        """n bytes of base64 noise (incompressible, like session tokens)."""
        return base64.b64encode(self.rng.randbytes(n * 3 // 4 + 3))[:n]

    def size(self, lo, hi, mu):
        """Long-tailed size in [lo, hi] with median ~mu, like real values."""
        return max(lo, min(hi, int(self.rng.lognormvariate(0, 0.8) * mu)))

    # -- strings ------------------------------------------------------------

    def gen_profile(self, i):
        r = self.rng
        key = b"user:%d:profile" % (100000 + i)
        name = r.choice(WORDS)
        head = (b'{"id":%d,"name":"%s","email":"%s@example.com","age":%d,'
                b'"country":"%s","bio":"' % (100000 + i, name, name,
                                             r.randint(16, 90), r.choice(COUNTRIES)))
        bio_len = max(0, self.size(20, 500, 160) - len(head) - 2)
        value = head + self.text(bio_len) + b'"}'
        self.begin_key()
        self.pipe.send([b"SET", key, value])
        self.end_key(key)
        return len(key) + len(value)

    def gen_session(self, i):
        key = b"session:" + self.rng.randbytes(16).hex().encode()
        value = self.token(self.size(20, 400, 90))
        self.begin_key()
        self.pipe.send([b"SET", key, value])
        self.end_key(key)
        return len(key) + len(value)

    def gen_cache(self, i):
        key = b"cache:item:%d" % i
        r = self.rng.random()
        if r < 0.15:
            value = b"%d" % self.rng.randrange(10**9)  # int-encoded in RDB
        elif r < 0.6:
            body = self.text(self.size(20, 450, 120))
            value = b'<div class="item"><h2>%s</h2><p>%s</p></div>' % (
                self.rng.choice(WORDS), body)
        else:
            value = self.token(self.size(20, 500, 100))
        self.begin_key()
        self.pipe.send([b"SET", key, value])
        self.end_key(key)
        return len(key) + len(value)

    def gen_counter(self, i):
        key = b"counter:%s:%d" % (self.rng.choice(EVENTS), i)
        # Spread over the int8/int16/int32 RDB integer encodings.
        bound = self.rng.choice([128, 32768, 2**31])
        value = b"%d" % self.rng.randrange(-bound, bound)
        self.begin_key()
        self.pipe.send([b"SET", key, value])
        self.end_key(key)
        return len(key) + len(value)

    def gen_blob(self, i):
        key = b"blob:%d" % i
        n = self.rng.randint(100 * 1024, 1024 * 1024)
        value = self.text(n) if self.rng.random() < 0.5 else self.rng.randbytes(n)
        self.begin_key()
        self.pipe.send([b"SET", key, value])
        self.end_key(key)
        return len(key) + len(value)

    # -- hashes -------------------------------------------------------------

    def gen_hash_small(self, i):
        r = self.rng
        key = b"user:%d:settings" % (100000 + i)
        args = []
        for field in r.sample(HASH_FIELDS, r.randint(5, 20)):
            # Values stay <= 64 bytes so the hash keeps its listpack encoding.
            value = b"%d" % r.randrange(10**6) if r.random() < 0.4 else self.text(r.randint(1, 60))
            args += [field, value]
        self.begin_key()
        self.pipe.send([b"HSET", key] + args)
        self.end_key(key)
        return len(key) + sum(map(len, args))

    def gen_hash_large(self, i):
        r = self.rng
        key = b"index:%s:%d" % (r.choice(WORDS), i)
        args = []
        for f in range(r.randint(1000, 20000)):
            args += [b"sku:%d" % (f * 7 + r.randrange(7)),
                     self.text(r.randint(5, 80)) if r.random() < 0.5 else b"%d" % r.randrange(10**9)]
        self.begin_key()
        self.send_chunked(b"HSET", key, args, 2)
        self.end_key(key)
        return len(key) + sum(map(len, args))

    # -- lists --------------------------------------------------------------

    def gen_list_small(self, i):
        r = self.rng
        key = b"queue:%s:%d" % (r.choice(EVENTS), i)
        items = [b'{"job":%d,"type":"%s","arg":"%s"}' % (r.randrange(10**9), r.choice(EVENTS),
                                                          self.text(r.randint(1, 150)))
                 for _ in range(r.randint(3, 100))]
        self.begin_key()
        self.pipe.send([b"RPUSH", key] + items)
        self.end_key(key)
        return len(key) + sum(map(len, items))

    def gen_list_large(self, i):
        r = self.rng
        key = b"log:%s:%d" % (r.choice(WORDS), i)
        t0 = 1_700_000_000 + i * 3600
        items = [b"%d %s svc=%s %s" % (t0 + n, r.choice(LEVELS), r.choice(WORDS),
                                        self.text(r.randint(10, 120)))
                 for n in range(r.randint(2000, 50000))]
        self.begin_key()
        self.send_chunked(b"RPUSH", key, items, 1)
        self.end_key(key)
        return len(key) + sum(map(len, items))

    # -- sets ---------------------------------------------------------------

    def gen_intset(self, i):
        r = self.rng
        key = b"user:%d:groups" % (100000 + i)
        # Pick the range so all three intset widths (16/32/64-bit) occur.
        bound = r.choice([2**15, 2**31, 2**62])
        items = [b"%d" % r.randrange(-bound, bound) for _ in range(r.randint(5, 500))]
        self.begin_key()
        self.pipe.send([b"SADD", key] + items)
        self.end_key(key)
        return len(key) + sum(map(len, items))

    def gen_set_small(self, i):
        key = b"article:%d:tags" % i
        items = self.rng.sample(WORDS, self.rng.randint(3, 50))
        self.begin_key()
        self.pipe.send([b"SADD", key] + items)
        self.end_key(key)
        return len(key) + sum(map(len, items))

    def gen_set_large(self, i):
        r = self.rng
        key = b"followers:%d" % i
        items = [b"user:%d" % r.randrange(10**8) for _ in range(r.randint(1000, 50000))]
        self.begin_key()
        self.send_chunked(b"SADD", key, items, 1)
        self.end_key(key)
        return len(key) + sum(map(len, items))

    # -- sorted sets --------------------------------------------------------

    def score(self):
        r = self.rng
        return b"%d" % r.randrange(10**6) if r.random() < 0.5 else b"%.4f" % (r.random() * 1e4)

    def gen_zset_small(self, i):
        r = self.rng
        key = b"leaderboard:%s:%d" % (r.choice(WORDS), i)
        args = []
        for _ in range(r.randint(5, 120)):
            args += [self.score(), b"player:%d" % r.randrange(10**7)]
        self.begin_key()
        self.pipe.send([b"ZADD", key] + args)
        self.end_key(key)
        return len(key) + sum(map(len, args))

    def gen_zset_large(self, i):
        r = self.rng
        key = b"ranking:%s:%d" % (r.choice(WORDS), i)
        args = []
        for _ in range(r.randint(1000, 50000)):
            args += [self.score(), b"item:%d:%s" % (r.randrange(10**8), r.choice(WORDS))]
        self.begin_key()
        self.send_chunked(b"ZADD", key, args, 2)
        self.end_key(key)
        return len(key) + sum(map(len, args))

    # -- streams ------------------------------------------------------------

    def gen_stream(self, i):
        r = self.rng
        key = b"events:%s:%d" % (r.choice(EVENTS), i)
        self.begin_key()
        # Explicit IDs keep the content deterministic (XADD * uses the clock).
        ms = 1_700_000_000_000 + i * 10_000_000
        ids, used = [], len(key)
        for _ in range(r.randint(100, 5000)):
            ms += r.randint(0, 2000)
            sid = b"%d-%d" % (ms, len(ids))
            fields = [b"type", r.choice(EVENTS), b"user", b"%d" % r.randrange(10**6)]
            if r.random() < 0.5:
                fields += [b"payload", self.text(r.randint(10, 200))]
            self.pipe.send([b"XADD", key, sid] + fields)
            ids.append(sid)
            used += len(sid) + sum(map(len, fields))
        if r.random() < 0.5:
            self.add_groups(key, ids)
        # Deleting after the groups read leaves PEL entries pointing at
        # deleted IDs, which real streams have too.
        if r.random() < 0.2:
            self.pipe.send([b"XDEL", key] + r.sample(ids, min(len(ids), r.randint(1, 20))))
        self.end_key(key)
        return used

    def add_groups(self, key, ids):
        """Consumer groups whose consumers read part of the stream and ack
        only some of it, so the dump carries non-empty PELs."""
        r = self.rng
        for g in range(r.randint(1, 3)):
            group = b"group-%d" % g
            self.pipe.send([b"XGROUP", b"CREATE", key, group, b"0"])
            # Consumers read consecutive slices, so which IDs each one got is
            # known here without looking at the replies.
            pos = 0
            for c in range(r.randint(1, 3)):
                count = r.randint(1, 200)
                self.pipe.send([b"XREADGROUP", b"GROUP", group, b"consumer-%d" % c,
                                b"COUNT", b"%d" % count, b"STREAMS", key, b">"])
                read = ids[pos:pos + count]
                pos += count
                acked = [x for x in read if r.random() < 0.7]
                if acked:
                    self.pipe.send([b"XACK", key, group] + acked)


def rdb_size(conn, workdir):
    conn.call("SAVE")
    return os.path.getsize(os.path.join(workdir, "dump.rdb"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default="/tmp/rdbtool-bench/mixed-1g.rdb")
    ap.add_argument("--size-mb", type=float, default=1024,
                    help="approximate size of the RDB file in MiB (default 1024)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--redis-cli", default="/usr/bin/redis-cli")
    args = ap.parse_args()

    # Turn SIGTERM into an exception so the finally block still kills the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    target = int(args.size_mb * MiB)
    outdir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(outdir, exist_ok=True)
    # Work next to the output so the final dump is a rename, not a 1 GiB copy.
    workdir = tempfile.mkdtemp(prefix=".gen_dump-", dir=outdir)
    started = time.monotonic()
    server = pipe = None
    try:
        server = Server(args.redis_server, workdir)
        conn = RespConn(server.port)
        version = info(conn, "server").get("redis_version", "?")
        print(f"redis-server {version} on port {server.port}, target {target / MiB:.0f} MiB",
              file=sys.stderr)

        gen = Generator(args.seed)
        # ~32 batches at full size; each batch ends a redis-cli session so the
        # dump can be measured between batches.
        batch_payload = max(MiB, target // 32)
        batches, size, sent = 0, 0, 0
        todo = 1  # first batch calibrates RDB bytes per payload byte
        while todo > 0:
            for _ in range(todo):
                pipe = Pipe(args.redis_cli, server.port, workdir)
                gen.batch(pipe, batch_payload)
                pipe.finish()
                sent += pipe.sent
                pipe = None
                batches += 1
            size = rdb_size(conn, workdir)
            # Ratio against the payload actually generated, not the batch
            # count: early batches overshoot their share by one big key each.
            payload = gen.payload_bytes()
            left = round((target / (size / payload) - payload) / batch_payload)
            # Data can't be taken back out, so stop short of the estimate and
            # re-measure: the first batch's ratio is skewed by its big keys.
            todo = left if left <= 2 else int(left * 0.8)
            print(f"  {batches} batches: rdb {size / MiB:.0f} MiB, "
                  f"{time.monotonic() - started:.0f} s, ~{max(left, 0)} to go", file=sys.stderr)

        keyspace = info(conn, "keyspace")
        memory = info(conn, "memory")
        conn.close()
        server.kill()
        os.replace(os.path.join(workdir, "dump.rdb"), args.output)
        elapsed = time.monotonic() - started

        with open(args.output, "rb") as f:
            magic = f.read(9).decode(errors="replace")
        print(f"wrote {args.output}: {size} bytes ({size / MiB:.1f} MiB), {magic}, "
              f"redis {version}, seed {args.seed}, {elapsed:.1f} s")
        print(f"command stream {sent / MiB:.0f} MiB in {batches} batches, "
              f"server peak memory {memory.get('used_memory_peak_human')}")
        for db, line in sorted(keyspace.items()):
            print(f"{db}: {line}")
        total_bytes = gen.payload_bytes()
        print(f"{'type':8} {'kind':12} {'keys':>10} {'payload MiB':>12} {'share':>6}")
        for rtype, sub in MIX.items():
            for kind in sub:
                keys, nbytes = gen.stats[kind]
                print(f"{rtype:8} {kind:12} {keys:10d} {nbytes / MiB:12.1f} "
                      f"{100 * nbytes / total_bytes:5.1f}%")
        print(f"keys {sum(gen.per_db)} (db0 {gen.per_db[0]}, db1 {gen.per_db[1]}), "
              f"with TTL {gen.expires}")
    finally:
        if pipe is not None:
            pipe.kill()
        if server is not None:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
