"""Start a Redis/Valkey server from target/servers and talk RESP2 to it.

Standard library only, so the fixture scripts run on any python3 without a
client package; several of the bundled servers ship no CLI anyway.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time


class ReplyError(Exception):
    """An error reply (-ERR ...) from the server."""


class Client:
    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    def __call__(self, *args):
        """Sends one command and returns its reply; str args are UTF-8 encoded."""
        self.sock.sendall(self._encode(args))
        return self._read()

    def pipeline(self, commands):
        """Sends many commands in one write and returns their replies.

        Error replies are returned in place rather than raised, so a caller
        can see which command failed.
        """
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        replies = []
        for _ in commands:
            try:
                replies.append(self._read())
            except ReplyError as e:
                replies.append(e)
        return replies

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = repr(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _read(self):
        line = self.rfile.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            # Errors inside arrays (EXEC, FUNCTION results) stay as values.
            items = []
            for _ in range(n):
                try:
                    items.append(self._read())
                except ReplyError as e:
                    items.append(e)
            return items
        raise ConnectionError(f"unexpected RESP reply {line!r}")


def free_port():
    """A port that was free a moment ago; good enough for one local server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def version_tuple(version):
    return tuple(int(p) for p in version.split(".")[:3])


def load_servers(servers_dir):
    with open(os.path.join(servers_dir, "servers.json")) as f:
        return json.load(f)


class Server:
    """A throwaway server on 127.0.0.1 with its own temp dir, persistence off.

    Use as a context manager: the process is killed and the dir removed on
    exit, whatever happened inside. With rdb=PATH the server starts by
    loading a copy of that file.
    """

    def __init__(self, info, extra_args=(), rdb=None):
        self.info = info
        self.extra_args = list(extra_args)
        self.rdb = rdb
        self.dir = None
        self.proc = None
        self.port = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix=f"rdbtool-{self.info['name']}-")
        try:
            if self.rdb:
                shutil.copyfile(self.rdb, self.dump_path)
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        args = [
            self.info["server"],
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "server.log"),
        ]
        # Before 7.0 DEBUG is always allowed and the option does not exist.
        if self.info["kind"] == "valkey" or version_tuple(self.info["version"]) >= (7, 0):
            args += ["--enable-debug-command", "yes"]
        args += self.extra_args
        # Retry on a new port in case another process took ours meanwhile.
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                args + ["--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    c = Client(self.port)
                    try:
                        if c("PING") == "PONG":
                            return
                    finally:
                        c.close()
                except (OSError, ReplyError):
                    time.sleep(0.05)
            self._kill()
        raise RuntimeError(f"{self.info['name']} did not start; log:\n{self.log_tail()}")

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self):
        return Client(self.port)

    @property
    def dump_path(self):
        return os.path.join(self.dir, "dump.rdb")

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc):
        self._kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
